--[[
asyncio.streams: TCP streams, Python's high-level API.

    local reader, writer = asyncio.open_connection("127.0.0.1", port):await()
    writer:write("hello\n"); writer:drain():await()
    local line = reader:readline():await()
    writer:close(); writer:wait_closed():await()

    local server = asyncio.start_server(handle, "127.0.0.1", 0):await()
    local host, port = server.sockets[1]:getsockname()

Data are Lua strings (Python's bytes). The socket is non-blocking; a
read that finds nothing waits for readability in the loop's poller (the
GIL released there), a write that cannot go out at once is buffered and
sent when the socket is writable; drain() waits while the buffer is over
its high-water mark (64 KiB).
]]

local Object = require "gilua.class"
local exc = require "gilua.exceptions"
local args = require "gilua.args"
local aio = require "_asyncio"
local core = require "asyncio.core"

local ValueError = exc.ValueError
local async, await_future, new_future = core.async, core._await_future, core._new_future
local set_result = core._set_result
local IncompleteReadError, LimitOverrunError =
  core.IncompleteReadError, core.LimitOverrunError
local PENDING = core.PENDING
local pcall, error, type, tostring = pcall, error, type, tostring
local find, sub = string.find, string.sub
local recv, send = aio.recv, aio.send

local M = {}

local LIMIT = 65536             -- readuntil's limit, Python's default
local HIGH_WATER = 65536
local CHUNK = 65536

local function wake(fut)
  if fut._state == PENDING then set_result(fut, nil) end
end

-- Waits until fd is readable (or writable): the loop's poller watches it
-- meanwhile.
local function wait_fd(loop, fd, writing)
  local fut = new_future(loop)
  if writing then loop:add_writer(fd, wake, fut) else loop:add_reader(fd, wake, fut) end
  local ok, e = pcall(await_future, fut)
  if writing then loop:remove_writer(fd) else loop:remove_reader(fd) end
  if not ok then error(e, 0) end
end
M._wait_fd = wait_fd

-- Transport: the socket shared by a reader and a writer -------------------------

local Transport = Object:extend("asyncio.Transport")

function Transport:init(loop, fd)
  self._loop, self.fd, self.closed = loop, fd, false
  self._rfut, self._rwatched = false, false
end

function Transport:close()
  if self.closed then return end
  self.closed = true
  local loop = self._loop
  if not loop:is_closed() then
    loop:remove_reader(self.fd)
    loop:remove_writer(self.fd)
  end
  aio.close(self.fd)
  local rf = self._rfut                -- a reader waiting: it sees the end
  if rf then
    self._rfut = false
    wake(rf)
  end
  local w = self._closed_waiters
  if w then
    self._closed_waiters = nil
    for i = 1, #w do wake(w[i]) end
  end
end

function Transport:__gc()
  if not self.closed then pcall(aio.close, self.fd) end
end

--[[ Waiting for a socket to be readable. The descriptor stays in the
poller between waits (a ping-pong exchange then costs no epoll_ctl at
all); if it becomes readable while nobody waits, the loop's callback
takes it out, since the poller is level-triggered. ]]
local function on_readable(tr)
  local fut = tr._rfut
  if fut then
    tr._rfut = false
    wake(fut)
  else
    tr._rwatched = false
    tr._loop:remove_reader(tr.fd)
  end
end

local function wait_readable(tr)
  local loop = tr._loop
  local fut = new_future(loop)
  tr._rfut = fut
  if not tr._rwatched then
    tr._rwatched = true
    loop:add_reader(tr.fd, on_readable, tr)
  end
  local ok, e = pcall(await_future, fut)
  if tr._rfut == fut then tr._rfut = false end
  if not ok then error(e, 0) end
end

-- StreamReader --------------------------------------------------------------------

local StreamReader = Object:extend("asyncio.StreamReader")
M.StreamReader = StreamReader

function StreamReader:init(opts)
  self._limit = opts and opts.limit or LIMIT
  self._buf, self._pos = "", 1  -- unread data: _buf from _pos on
  self._eof = false
  self._waiter = nil            -- for readers fed by hand (feed_data)
end

function StreamReader:_attach(transport)
  self._transport = transport
end

local function buffered(self) return #self._buf - self._pos + 1 end

function StreamReader:at_eof() return self._eof and buffered(self) == 0 end

function StreamReader:feed_data(data)
  self._buf = sub(self._buf, self._pos) .. data
  self._pos = 1
  if self._waiter then wake(self._waiter) end
end

function StreamReader:feed_eof()
  self._eof = true
  if self._waiter then wake(self._waiter) end
end

function StreamReader:set_exception(e)
  self._exception = e
  if self._waiter then wake(self._waiter) end
end

-- Gets more data (or the end of the stream) into the buffer.
local function fill(self)
  if self._exception then error(self._exception, 0) end
  if self._eof then return end
  local tr = self._transport
  if tr == nil then                        -- fed by hand
    local fut = new_future(core.get_running_loop())
    self._waiter = fut
    local ok, e = pcall(await_future, fut)
    self._waiter = nil
    if not ok then error(e, 0) end
    if self._exception then error(self._exception, 0) end
    return
  end
  while true do
    if tr.closed then self._eof = true; return end
    local ok, data = pcall(recv, tr.fd, CHUNK)
    if not ok then
      if exc.ConnectionResetError:is(data) then self._eof = true; return end
      self._exception = data
      error(data, 0)
    end
    if data == "" then self._eof = true; return end
    if data then
      if self._pos > #self._buf then self._buf = data
      else self._buf = sub(self._buf, self._pos) .. data end
      self._pos = 1
      return
    end
    wait_readable(tr)
  end
end

local function take(self, n)
  local pos = self._pos
  local s = sub(self._buf, pos, pos + n - 1)
  self._pos = pos + #s
  if self._pos > #self._buf then self._buf, self._pos = "", 1 end
  return s
end

local function take_all(self)
  local s = sub(self._buf, self._pos)
  self._buf, self._pos = "", 1
  return s
end

local read = async(function(self, n)
  n = n or -1
  if n == 0 then return "" end
  if n < 0 then
    while not self._eof do fill(self) end
    return take_all(self)
  end
  if buffered(self) == 0 then fill(self) end
  return take(self, n)
end, "StreamReader.read")

-- Finds sep in the buffer; returns the data up to and including it.
local readuntil = async(function(self, sep)
  sep = sep or "\n"
  if sep == "" then error(ValueError("Separator should be at least one-byte string"), 0) end
  local from = self._pos
  while true do
    local i, j = find(self._buf, sep, from, true)
    if i then
      local n = j - self._pos + 1
      if n > self._limit then
        error(LimitOverrunError("Separator is found, but chunk is longer than limit", n), 0)
      end
      return take(self, n)
    end
    local have = buffered(self)
    if have > self._limit then
      error(LimitOverrunError("Separator is not found, and chunk exceed the limit", have), 0)
    end
    if self._eof then
      local partial = take_all(self)
      error(IncompleteReadError(partial, nil), 0)
    end
    from = math.max(self._pos, #self._buf - #sep + 2)
    local rel = from - self._pos
    fill(self)
    from = self._pos + rel
  end
end, "StreamReader.readuntil")

-- readline: Python returns what is left at the end of the stream.
local readline_impl = async(function(self)
  local ok, r = pcall(function() return readuntil(self, "\n"):await() end)
  if ok then return r end
  if IncompleteReadError:is(r) then return r.partial end
  if LimitOverrunError:is(r) then
    error(ValueError(r.message), 0)
  end
  error(r, 0)
end, "StreamReader.readline")

local readexactly = async(function(self, n)
  if n < 0 then error(ValueError("readexactly size can not be less than zero"), 0) end
  while buffered(self) < n do
    if self._eof then
      error(IncompleteReadError(take_all(self), n), 0)
    end
    fill(self)
  end
  return take(self, n)
end, "StreamReader.readexactly")

function StreamReader:read(n) return read(self, n) end
function StreamReader:readline() return readline_impl(self) end
function StreamReader:readuntil(sep) return readuntil(self, sep) end
function StreamReader:readexactly(n) return readexactly(self, n) end

-- `for line in reader:lines() do` inside a task: each line, until EOF.
function StreamReader:lines()
  return function()
    local line = self:readline():await()
    if line == "" then return nil end
    return line
  end
end

function StreamReader:__tostring()
  return ("<StreamReader%s buffered=%d>"):format(self._eof and " eof" or "", buffered(self))
end

-- StreamWriter ------------------------------------------------------------------------

local StreamWriter = Object:extend("asyncio.StreamWriter")
M.StreamWriter = StreamWriter

function StreamWriter:init(transport, reader)
  self.transport = transport
  self._reader = reader
  self._loop = transport._loop
  self._pending = {}            -- strings not sent yet; the first from _off
  self._off = 1
  self._bytes = 0
  self._closing = false
  self._drainers = nil
end

local function wake_drainers(self)
  local d = self._drainers
  if d then
    self._drainers = nil
    for i = 1, #d do wake(d[i]) end
  end
end

-- Sends what can go now; true when nothing is left.
local function flush(self)
  local tr = self.transport
  local p = self._pending
  while p[1] do
    local s = p[1]
    local ok, n = pcall(send, tr.fd, s, self._off)
    if not ok then
      self._error = n
      self._pending, self._bytes, self._off = {}, 0, 1
      wake_drainers(self)
      return true
    end
    if n == 0 then return false end
    self._bytes = self._bytes - n
    self._off = self._off + n
    if self._off > #s then
      table.remove(p, 1)
      self._off = 1
    end
  end
  return true
end

local function on_writable(self)
  local tr = self.transport
  if tr.closed then return end
  if flush(self) then
    self._loop:remove_writer(tr.fd)
    wake_drainers(self)
    if self._eof_pending then aio.shutdown_write(tr.fd); self._eof_pending = nil end
    if self._closing then tr:close() end
  elseif self._bytes <= HIGH_WATER then
    wake_drainers(self)
  end
end

function StreamWriter:write(data)
  if type(data) ~= "string" then
    error(exc.TypeError("data argument must be a string, not " .. core._typename(data)), 2)
  end
  local tr = self.transport
  if self._closing or tr.closed then return end
  if data == "" then return end
  local p = self._pending
  if p[1] == nil then
    local ok, n = pcall(send, tr.fd, data, 1)
    if not ok then self._error = n; return end
    if n == #data then return end
    p[1] = data
    self._off = n + 1
    self._bytes = #data - n
    self._loop:add_writer(tr.fd, on_writable, self)
  else
    p[#p + 1] = data
    self._bytes = self._bytes + #data
  end
end

function StreamWriter:writelines(list)
  for i = 1, #list do self:write(list[i]) end
end

function StreamWriter:can_write_eof() return true end

function StreamWriter:write_eof()
  local tr = self.transport
  if tr.closed then return end
  if self._pending[1] == nil then aio.shutdown_write(tr.fd)
  else self._eof_pending = true end
end

local drain = async(function(self)
  if self._error then
    local e = self._error
    error(e, 0)
  end
  if self.transport.closed and self._reader and not self._closing then
    error(exc.ConnectionResetError("Connection lost"), 0)
  end
  if self._bytes > HIGH_WATER then
    local fut = new_future(self._loop)
    local d = self._drainers
    if d then d[#d + 1] = fut else self._drainers = { fut } end
    await_future(fut)
    if self._error then error(self._error, 0) end
  elseif self.transport.closed then
    core.sleep(0):await()        -- as Python's, when the transport is closing
  end
end, "StreamWriter.drain")

function StreamWriter:drain() return drain(self) end

function StreamWriter:close()
  if self._closing then return end
  self._closing = true
  local tr = self.transport
  if self._pending[1] == nil then tr:close() end
end

function StreamWriter:is_closing() return self._closing or self.transport.closed end

local wait_closed = async(function(self)
  local tr = self.transport
  if tr.closed then return end
  local fut = new_future(self._loop)
  local w = tr._closed_waiters
  if w then w[#w + 1] = fut else tr._closed_waiters = { fut } end
  await_future(fut)
end, "StreamWriter.wait_closed")

function StreamWriter:wait_closed() return wait_closed(self) end

function StreamWriter:get_extra_info(name, default)
  local tr = self.transport
  if tr.closed then return default end
  if name == "peername" or name == "sockname" then
    local ok, host, port = pcall(aio.sockname, tr.fd, name == "peername")
    if ok then return { host, port } end
    return default
  end
  if name == "socket" then return tr.fd end
  return default
end

function StreamWriter:__close() self:close() end

function StreamWriter:__tostring()
  return ("<StreamWriter fd=%d%s>"):format(self.transport.fd,
    self:is_closing() and " closing" or "")
end

local function make_streams(loop, fd, limit)
  local tr = Transport(loop, fd)
  local reader = StreamReader{ limit = limit }
  reader:_attach(tr)
  return reader, StreamWriter(tr, reader)
end

-- open_connection ---------------------------------------------------------------------

local CONN_SPEC = { "host", "port", "limit", fname = "open_connection" }

local open_connection = async(function(host, port, limit)
  local loop = core.get_running_loop()
  args.check(port, "integer", "open_connection", "port")
  local skip, last = 0, nil
  while true do
    local ok0, fd, pending, index = pcall(aio.connect, host, port, skip)
    if not ok0 then error(last or fd, 0) end  -- no address left: the last error
    if not pending then return make_streams(loop, fd, limit) end
    local ok, e = pcall(function()
      wait_fd(loop, fd, true)
      aio.connect_result(fd)
    end)
    if ok then return make_streams(loop, fd, limit) end
    aio.close(fd)
    if not exc.OSError:is(e) then error(e, 0) end   -- cancelled, ...
    last, skip = e, index                  -- refused here: the next address
  end
end, "open_connection")

function M.open_connection(...)
  local host, port, limit = args.get(CONN_SPEC, ...)
  return open_connection(host, port, limit)
end

-- Servers ------------------------------------------------------------------------------

local Socket = Object:extend("asyncio.Socket")
function Socket:init(host, port) self._host, self._port = host, port end
function Socket:getsockname() return self._host, self._port end
function Socket:__tostring()
  return ("<socket %s:%d>"):format(tostring(self._host), self._port)
end

local Server = Object:extend("asyncio.Server")
M.Server = Server

function Server:init(loop, fd, host, port, cb, limit)
  self._loop, self._fd, self._cb, self._limit = loop, fd, cb, limit
  self.sockets = { Socket(host, port) }
  self._serving = false
  self._conns = {}
end

local function on_accept(self)
  local loop = self._loop
  for _ = 1, 128 do
    local ok, fd = pcall(aio.accept, self._fd)
    if not ok then
      loop:call_exception_handler{ message = "error accepting a connection",
                                   exception = fd }
      return
    end
    if fd == nil then return end
    local reader, writer = make_streams(loop, fd, self._limit)
    local res = self._cb(reader, writer)
    if core.iscoroutine(res) then
      local task = loop:create_task(res)
      self._conns[task] = true
      task:add_done_callback(function(t)
        self._conns[t] = nil
        if not t:cancelled() and t._failed then
          core._retrieved(t)
          loop:call_exception_handler{
            message = "Unhandled exception in client_connected_cb",
            exception = t._exception, traceback = t._tb }
        end
      end)
    end
  end
end

function Server:_start()
  if self._serving or self._fd == nil then return end
  self._serving = true
  self._loop:add_reader(self._fd, on_accept, self)
end

function Server:is_serving() return self._serving end
function Server:get_loop() return self._loop end

function Server:close()
  local fd = self._fd
  if fd == nil then return end
  self._fd = nil
  self._serving = false
  if not self._loop:is_closed() then self._loop:remove_reader(fd) end
  aio.close(fd)
  self.sockets = {}
  local w = self._closed_waiters
  if w then
    self._closed_waiters = nil
    for i = 1, #w do wake(w[i]) end
  end
end

local start_serving = async(function(self)
  self:_start()
  core.sleep(0):await()
end, "Server.start_serving")

function Server:start_serving() return start_serving(self) end

local serve_forever = async(function(self)
  self:_start()
  local fut = new_future(self._loop)
  self._forever = fut
  local ok, e = pcall(await_future, fut)
  self:close()
  if not ok then error(e, 0) end
end, "Server.serve_forever")

function Server:serve_forever() return serve_forever(self) end

local server_wait_closed = async(function(self)
  if self._fd == nil then return end
  local fut = new_future(self._loop)
  local w = self._closed_waiters
  if w then w[#w + 1] = fut else self._closed_waiters = { fut } end
  await_future(fut)
end, "Server.wait_closed")

function Server:wait_closed() return server_wait_closed(self) end

function Server:__close() self:close() end

function Server:__tostring()
  local s = self.sockets[1]
  return ("<Server %s>"):format(s and tostring(s) or "closed")
end

local SERVER_SPEC = { "client_connected_cb", "host", "port", "limit", "backlog",
                      "start_serving", fname = "start_server" }

local start_server = async(function(cb, host, port, limit, backlog, serving)
  local loop = core.get_running_loop()
  local fd, bhost, bport = aio.listen(host, port or 0, backlog or 100)
  local server = Server(loop, fd, bhost, bport, cb, limit)
  if serving ~= false then server:_start() end
  return server
end, "start_server")

function M.start_server(...)
  local cb, host, port, limit, backlog, serving = args.get(SERVER_SPEC, ...)
  args.check(cb, "callable", "start_server", "client_connected_cb")
  if port ~= nil then args.check(port, "integer", "start_server", "port") end
  return start_server(cb, host, port, limit, backlog, serving)
end

M._make_streams = make_streams
M._Transport = Transport

return M
