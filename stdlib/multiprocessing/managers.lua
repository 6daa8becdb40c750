--[[
multiprocessing.managers: Manager() starts a server process that holds
shared objects; proxies in any process send their reads and writes to it.

    local mp = require "multiprocessing"
    local manager <close> = mp.Manager()      -- shutdown at the end of the scope
    local d, l = manager:dict(), manager:list()
    d.k = true; d["other key"] = 1; l:append(42)
    print(d, l)                               -- {'k': True, ...} [42]

The server listens on a Unix socket in a directory only the user can
enter, the socket itself mode 0600, and a client must first prove that it
holds the manager's random authentication key (challenge and HMAC-SHA256
answer, both ways, on raw bytes: nothing from a client is decoded before).
Each thread of a client has its own connection, and one server thread
serves each connection, so a blocking call (a Queue get, a Lock acquire)
only blocks its caller. Objects live until the manager shuts down. A server whose
parent died without shutting it down (killed) stops soon after (it
looks every second).

Proxies: dict (d[k], d[k] = v, d:get, d:keys, d:values, d:items, d:pop,
d:update, d:copy, #d, method names win over keys of the same name: read
those with d:get(k)), list (l[i] 1-based, l:append, l:extend, l:insert,
l:pop, l:remove, l:index, l:count, l:copy, #l), Namespace (fields), Queue,
JoinableQueue, Lock, RLock, Semaphore, BoundedSemaphore, Event, Value
(.value). print(proxy) shows the contents the Python way.
]]

local mp = require "multiprocessing"
local util = require "multiprocessing._util"
local _mp = require "_multiprocessing"
local Object = require "gilua.class"
local exc = require "gilua.exceptions"
local args = require "gilua.args"
local threading = require "threading"
local queue = require "queue"

local type, next, pcall, tostring, error, select, setmetatable, getmetatable, rawget =
  type, next, pcall, tostring, error, select, setmetatable, getmetatable, rawget
local unpack, pack = table.unpack, table.pack

local M = {}

-- Python's repr, for print(proxy) ------------------------------------------

local function repr(v, seen)
  local t = type(v)
  if v == nil then return "None" end
  if t == "boolean" then return v and "True" or "False" end
  if t == "string" then return "'" .. v:gsub("\\", "\\\\"):gsub("'", "\\'") .. "'" end
  if t == "number" then
    if math.type(v) == "float" and v == math.floor(v) and v == v and v ~= math.huge and v ~= -math.huge then
      return ("%.1f"):format(v)
    end
    return tostring(v)
  end
  if t ~= "table" or getmetatable(v) ~= nil then return tostring(v) end
  seen = seen or {}
  if seen[v] then return "{...}" end
  seen[v] = true
  local out, n = {}, #v
  local list = n > 0
  for k in next, v do
    if math.type(k) ~= "integer" or k < 1 or k > n then list = false; break end
  end
  if list or next(v) == nil and getmetatable(v) == nil and rawget(v, "__list") then
    for i = 1, n do out[i] = repr(v[i], seen) end
    seen[v] = nil
    return "[" .. table.concat(out, ", ") .. "]"
  end
  local keys = {}
  for k in next, v do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
    return type(a) < type(b)
  end)
  for i, k in next, keys do out[i] = repr(k, seen) .. ": " .. repr(v[k], seen) end
  seen[v] = nil
  return "{" .. table.concat(out, ", ") .. "}"
end
M._repr = repr

-- The server --------------------------------------------------------------------

local function list_repr(t)
  local out = {}
  for i = 1, t.n do out[i] = repr(t[i]) end
  return "[" .. table.concat(out, ", ") .. "]"
end

-- The objects the server makes: each kind maps method names to functions
-- of (object, ...).
local KINDS = {}

KINDS.dict = {
  new = function(init)
    local d = {}
    if type(init) == "table" then for k, v in next, init do d[k] = v end end
    return d
  end,
  getitem = function(d, k)
    local v = d[k]
    if v == nil then error(exc.KeyError(repr(k))) end
    return v
  end,
  setitem = function(d, k, v) d[k] = v end,
  delitem = function(d, k)
    if d[k] == nil then error(exc.KeyError(repr(k))) end
    d[k] = nil
  end,
  get = function(d, k, default)
    local v = d[k]
    if v == nil then return default end
    return v
  end,
  len = function(d) local n = 0 for _ in next, d do n = n + 1 end return n end,
  keys = function(d) local r = {} for k in next, d do r[#r + 1] = k end return r end,
  values = function(d) local r = {} for _, v in next, d do r[#r + 1] = v end return r end,
  items = function(d) local r = {} for k, v in next, d do r[#r + 1] = { k, v } end return r end,
  copy = function(d) local r = {} for k, v in next, d do r[k] = v end return r end,
  update = function(d, t) for k, v in next, t do d[k] = v end end,
  pop = function(d, k, ...)
    local v = d[k]
    if v == nil then
      if select("#", ...) > 0 then return (...) end
      error(exc.KeyError(repr(k)))
    end
    d[k] = nil
    return v
  end,
  clear = function(d) for k in next, d do d[k] = nil end end,
  contains = function(d, k) return d[k] ~= nil end,
  repr = function(d) return repr(d) end,
}

KINDS.list = {
  new = function(init)
    local l = { n = 0 }
    if type(init) == "table" then
      for i = 1, init.n or #init do l[i] = init[i] end
      l.n = init.n or #init
    end
    return l
  end,
  getitem = function(l, i)
    if math.type(i) ~= "integer" or i < 1 or i > l.n then error(exc.IndexError("list index out of range")) end
    return l[i]
  end,
  setitem = function(l, i, v)
    if math.type(i) ~= "integer" or i < 1 or i > l.n then error(exc.IndexError("list assignment index out of range")) end
    l[i] = v
  end,
  len = function(l) return l.n end,
  append = function(l, v) l.n = l.n + 1; l[l.n] = v end,
  extend = function(l, t) for i = 1, t.n or #t do l.n = l.n + 1; l[l.n] = t[i] end end,
  insert = function(l, i, v)
    if i < 1 then i = 1 elseif i > l.n + 1 then i = l.n + 1 end
    table.move(l, i, l.n, i + 1)
    l[i] = v
    l.n = l.n + 1
  end,
  pop = function(l, i)
    if l.n == 0 then error(exc.IndexError("pop from empty list")) end
    i = i or l.n
    if i < 1 or i > l.n then error(exc.IndexError("pop index out of range")) end
    local v = l[i]
    table.move(l, i + 1, l.n, i)
    l[l.n] = nil
    l.n = l.n - 1
    return v
  end,
  index = function(l, v)
    for i = 1, l.n do if l[i] == v then return i end end
    error(exc.ValueError(repr(v) .. " is not in list"))
  end,
  remove = function(l, v)
    for i = 1, l.n do
      if l[i] == v then KINDS.list.pop(l, i); return end
    end
    error(exc.ValueError("list.remove(x): x not in list"))
  end,
  count = function(l, v) local c = 0 for i = 1, l.n do if l[i] == v then c = c + 1 end end return c end,
  copy = function(l) return table.move(l, 1, l.n, 1, {}) end,
  sort = function(l, cmp)
    local t = table.move(l, 1, l.n, 1, {})
    table.sort(t, cmp)
    table.move(t, 1, l.n, 1, l)
  end,
  repr = function(l) return list_repr(l) end,
}

KINDS.namespace = {
  new = function(init)
    local ns = {}
    if type(init) == "table" then for k, v in next, init do ns[k] = v end end
    return ns
  end,
  getattr = function(ns, k)
    local v = ns[k]
    if v == nil then error(exc.AttributeError("'Namespace' object has no attribute '" .. tostring(k) .. "'")) end
    return v
  end,
  setattr = function(ns, k, v) ns[k] = v end,
  delattr = function(ns, k) ns[k] = nil end,
  repr = function(ns)
    local keys, out = {}, {}
    for k in next, ns do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    for i, k in next, keys do out[i] = k .. "=" .. repr(ns[k]) end
    return "Namespace(" .. table.concat(out, ", ") .. ")"
  end,
}

KINDS.value = {
  new = function(typecode, v) return { typecode = typecode, value = v } end,
  get = function(o) return o.value end,
  set = function(o, v) o.value = v end,
  repr = function(o) return ("Value('%s', %s)"):format(o.typecode, repr(o.value)) end,
}

-- Objects with methods of their own (queues, locks): calls go to them.
local function method_kind(make)
  return { new = make, method = true,
           repr = function(o) return tostring(o) end }
end
KINDS.Queue = method_kind(function(maxsize) return queue.Queue(maxsize or 0) end)
KINDS.JoinableQueue = KINDS.Queue
KINDS.Lock = method_kind(function() return threading.Lock() end)
KINDS.RLock = method_kind(function() return threading.RLock() end)
KINDS.Semaphore = method_kind(function(v) return threading.Semaphore(v or 1) end)
KINDS.BoundedSemaphore = method_kind(function(v) return threading.BoundedSemaphore(v or 1) end)
KINDS.Event = method_kind(function() return threading.Event() end)
KINDS.Condition = method_kind(function() return threading.Condition() end)

local function traced(e)
  if type(e) == "table" and exc.BaseException:is(e) then local _ = e.traceback; return e end
  return tostring(e)
end

local function serve_client(conn, objects, key, state)
  -- nothing from a client is decoded before it has proved it has the key
  local ok = pcall(mp.connection.deliver_challenge, conn, key)
  if ok then ok = pcall(mp.connection.answer_challenge, conn, key) end
  if not ok then
    conn:close()
    return
  end
  while true do
    local got, req = pcall(conn.recv, conn)
    if not got or req == nil then break end
    local op = req[1]
    local reply
    if op == "create" then
      local kind = KINDS[req[2]]
      local r = pack(pcall(kind.new, unpack(req, 3, req.n)))
      if r[1] then
        state.next = state.next + 1
        objects[state.next] = { kind = req[2], obj = r[2] }
        reply = { true, state.next, n = 2 }
      else
        reply = { false, traced(r[2]), n = 2 }
      end
    elseif op == "call" then
      local entry = objects[req[2]]
      local kind = KINDS[entry.kind]
      local name = req[3]
      local r
      if kind.method and name ~= "repr" then
        local o = entry.obj
        r = pack(xpcall(function(...) return o[name](o, ...) end, traced, unpack(req, 4, req.n)))
        -- a lock-like acquire returns the object itself: send true instead
        if r[1] and r[2] == o then r[2] = true end
      else
        local fn = kind[name]
        if fn == nil then
          r = { false, exc.AttributeError("'" .. entry.kind .. "' proxy has no method '" .. tostring(name) .. "'"), n = 2 }
        else
          r = pack(xpcall(fn, traced, entry.obj, unpack(req, 4, req.n)))
        end
      end
      reply = r
    elseif op == "shutdown" then
      state.stop = true
      conn:send({ true, n = 1 })
      _mp.remove(state.path)
      _mp.remove(state.dir)
      _mp._exit(0)
    end
    local sent, err = pcall(conn.send, conn, reply)
    if not sent then
      pcall(conn.send, conn, { false, "result could not be sent: " .. tostring(err), n = 2 })
    end
  end
  conn:close()
end

local function server_main(lfd, key, dir, path, ppid)
  local objects, state = {}, { next = 0, dir = dir, path = path }
  while true do
    -- a parent that died without shutting us down (killed): stop too
    local ready = _mp.wait({ lfd }, 1)
    if os.getppid() ~= ppid then
      _mp.remove(path)
      _mp.remove(dir)
      _mp._exit(0)
    end
    local ok, conn = false, nil
    if #ready > 0 then ok, conn = pcall(_mp.accept, lfd) end
    if ok then
      threading.Thread{ daemon = true, name = "manager-client",
        target = serve_client, args = { conn, objects, key, state } }:start()
    end
  end
end

-- The client side ---------------------------------------------------------------

-- One connection to each manager per thread (Python's rule), so that a
-- thread blocked in a call (q:get()) does not hold up the others; a
-- thread's connections close when it ends and its local data is dropped.
local tls = threading["local"]()

local function connection(addr, key)
  local by_addr = tls.by_addr
  local pid = os.getpid()
  if by_addr == nil or by_addr.pid ~= pid then   -- none yet, or a fork's copy
    by_addr = { pid = pid }
    tls.by_addr = by_addr
  end
  local conn = by_addr[addr]
  if conn then return conn end
  conn = _mp.connect(addr)
  local ok, err = pcall(function()
    mp.connection.answer_challenge(conn, key)
    mp.connection.deliver_challenge(conn, key)
  end)
  if not ok then
    conn:close()
    if mp.AuthenticationError:is(err) then error(err, 0) end
    error(mp.AuthenticationError("authentication with the manager failed: " .. tostring(err)), 0)
  end
  by_addr[addr] = conn
  return conn
end

local function forget(addr)
  local by_addr = tls.by_addr
  local conn = by_addr and by_addr[addr]
  if conn then pcall(conn.close, conn); by_addr[addr] = nil end
end

local function request(addr, key, req)
  local conn = connection(addr, key)
  local ok, r = pcall(function()
    conn:send(req)
    return conn:recv()
  end)
  if not ok then
    -- Cut short (Ctrl-C) or broken: the server may still answer this call,
    -- so the connection is out of step; the next request makes a new one.
    forget(addr)
    error(r, 0)
  end
  if not r[1] then error(r[2], 0) end
  return unpack(r, 2, r.n)
end

-- Proxies: plain tables (_addr, _key, _id, _kind) with a class, so that
-- they travel to other processes and through the manager itself.
local BaseProxy = Object:extend("multiprocessing.managers.BaseProxy")
M.BaseProxy = BaseProxy

local function call(self, name, ...)
  return request(rawget(self, "_addr"), rawget(self, "_key"),
                 pack("call", rawget(self, "_id"), name, ...))
end
M._call = call

local function proxy_tostring(self) return call(self, "repr") end

local function make_proxy_class(name, methods, index, newindex, len)
  local cls = BaseProxy:extend("multiprocessing.managers." .. name)
  for _, m in next, methods do
    cls[m] = function(self, ...) return call(self, m, ...) end
  end
  cls.__tostring = proxy_tostring
  if index then
    cls.__index = function(self, k)
      local v = cls[k]
      if v ~= nil then return v end
      if type(k) == "string" and k:sub(1, 1) == "_" then return nil end
      return index(self, k)
    end
  end
  if newindex then cls.__newindex = newindex end
  if len then cls.__len = len end
  return cls
end

local DictProxy = make_proxy_class("DictProxy",
  { "get", "keys", "values", "items", "copy", "update", "pop", "clear" },
  function(self, k)
    local ok, v = pcall(call, self, "get", k)
    if not ok then error(v, 2) end
    return v
  end,
  function(self, k, v)
    if v == nil then call(self, "delitem", k) else call(self, "setitem", k, v) end
  end,
  function(self) return call(self, "len") end)
M.DictProxy = DictProxy

local ListProxy = make_proxy_class("ListProxy",
  { "append", "extend", "insert", "pop", "remove", "index", "count", "copy", "sort" },
  function(self, k) return call(self, "getitem", k) end,
  function(self, k, v) call(self, "setitem", k, v) end,
  function(self) return call(self, "len") end)
M.ListProxy = ListProxy

local NamespaceProxy = make_proxy_class("NamespaceProxy", {},
  function(self, k) return call(self, "getattr", k) end,
  function(self, k, v)
    if v == nil then call(self, "delattr", k) else call(self, "setattr", k, v) end
  end)
M.NamespaceProxy = NamespaceProxy

local ValueProxy = make_proxy_class("ValueProxy", { "get", "set" },
  function(self, k)
    if k == "value" then return call(self, "get") end
    return nil
  end,
  function(self, k, v)
    if k == "value" then return call(self, "set", v) end
    error(exc.AttributeError("cannot set '" .. tostring(k) .. "' on a ValueProxy"), 2)
  end)
M.ValueProxy = ValueProxy

local QueueProxy = make_proxy_class("QueueProxy",
  { "put", "get", "put_nowait", "get_nowait", "qsize", "empty", "full", "task_done", "join" })
M.QueueProxy = QueueProxy

local AcquirerProxy = make_proxy_class("AcquirerProxy",
  { "release", "locked", "set", "clear", "is_set", "wait", "notify", "notify_all" })
M.AcquirerProxy = AcquirerProxy
function AcquirerProxy:acquire(...)
  if call(self, "acquire", ...) then return self end
  return false
end
function AcquirerProxy:__close() call(self, "release") end

local PROXIES = { dict = DictProxy, list = ListProxy, namespace = NamespaceProxy,
                  value = ValueProxy, Queue = QueueProxy, JoinableQueue = QueueProxy,
                  Lock = AcquirerProxy, RLock = AcquirerProxy, Semaphore = AcquirerProxy,
                  BoundedSemaphore = AcquirerProxy, Event = AcquirerProxy,
                  Condition = AcquirerProxy }

-- The manager ----------------------------------------------------------------------

local SyncManager = Object:extend("multiprocessing.managers.SyncManager")
M.SyncManager = SyncManager

-- The server started by spawn: the target travels by name, the listening
-- socket as an inherited descriptor.
function M._spawned_server(lfd, key, dir, path, ppid)
  server_main(lfd, key, dir, path, ppid)
end

-- SyncManager(ctx): ctx, a context, says how the server process starts.
function SyncManager:init(ctx)
  self._key = _mp.random(32)
  self._dir = _mp.mkdtemp()
  self.address = self._dir .. "/listener"
  local lfd = _mp.listen(self.address)
  local key, dir, path, ppid = self._key, self._dir, self.address, os.getpid()
  local method = ctx and ctx.get_start_method() or mp.get_start_method()
  if method == "spawn" then
    self._process = mp.get_context("spawn").Process{ name = "SyncManager",
      target = M._spawned_server, args = { lfd, key, dir, path, ppid } }
    self._process._keep_fds = { lfd }
  else
    self._process = mp.get_context("fork").Process{ name = "SyncManager", target = function()
      server_main(lfd, key, dir, path, ppid)
    end }
  end
  self._process:start()
  _mp.close(lfd)
  self._pid = os.getpid()
end

function SyncManager:start() end

local function create(self, kind, ...)
  if self._shutdown then error(exc.RuntimeError("manager has shut down"), 3) end
  local id = request(self.address, self._key, pack("create", kind, ...))
  return setmetatable({ _addr = self.address, _key = self._key, _id = id, _kind = kind },
                      PROXIES[kind])
end

-- Arguments are checked here, in the caller's process, so that a mistake
-- is reported where it was made and names the method.
local function opt_table(v, fname, argname)
  if v ~= nil then args.check(v, "table", fname, argname) end
  return v
end

local function opt_count(v, fname, argname, min)
  if v == nil then return nil end
  return util.check_int(v, fname, argname, min)
end

function SyncManager:dict(init) return create(self, "dict", opt_table(init, "SyncManager.dict", "init")) end
function SyncManager:list(init) return create(self, "list", opt_table(init, "SyncManager.list", "init")) end
function SyncManager:Namespace(init)
  return create(self, "namespace", opt_table(init, "SyncManager.Namespace", "init"))
end
function SyncManager:Value(typecode, v)
  args.check(typecode, "string", "SyncManager.Value", "typecode")
  return create(self, "value", typecode, v)
end
function SyncManager:Queue(maxsize)
  return create(self, "Queue", opt_count(maxsize, "SyncManager.Queue", "maxsize"))
end
function SyncManager:JoinableQueue(maxsize)
  return create(self, "JoinableQueue", opt_count(maxsize, "SyncManager.JoinableQueue", "maxsize"))
end
function SyncManager:Lock(...) util.no_args("SyncManager.Lock", ...) return create(self, "Lock") end
function SyncManager:RLock(...) util.no_args("SyncManager.RLock", ...) return create(self, "RLock") end
function SyncManager:Semaphore(v)
  return create(self, "Semaphore", opt_count(v, "SyncManager.Semaphore", "value", 0))
end
function SyncManager:BoundedSemaphore(v)
  return create(self, "BoundedSemaphore", opt_count(v, "SyncManager.BoundedSemaphore", "value", 0))
end
function SyncManager:Event(...) util.no_args("SyncManager.Event", ...) return create(self, "Event") end
function SyncManager:Condition(...)
  util.no_args("SyncManager.Condition", ...)
  return create(self, "Condition")
end

function SyncManager:shutdown()
  if self._shutdown or self._pid ~= os.getpid() then return end
  self._shutdown = true
  pcall(request, self.address, self._key, { "shutdown", n = 1 })
  forget(self.address)
  self._process:join(2)
  if self._process.exitcode == nil then self._process:terminate(); self._process:join() end
  _mp.remove(self.address)
  _mp.remove(self._dir)
end

SyncManager.__close = SyncManager.shutdown
SyncManager.__gc = function(self) pcall(SyncManager.shutdown, self) end

function M.Manager(...)
  util.no_args("Manager", ...)
  return SyncManager()
end

-- Managers still running at exit are shut down.
local live = setmetatable({}, { __mode = "k" })
local plain_init = SyncManager.init
function SyncManager:init(...)
  plain_init(self, ...)
  live[self] = true
end
threading._register_atexit(function()
  for m in next, live do pcall(m.shutdown, m) end
end)

return M
