--[[
multiprocessing: Python's module on the C core _multiprocessing. Real OS
processes, each with its own interpreter and its own GIL. The locks are
multiprocessing.synchronize's, the shared values multiprocessing.sharedctypes's.

    local mp = require "multiprocessing"
    local p = mp.Process{target = f, args = {1, 2}}
    p:start(); p:join(); print(p.exitcode)
    local a, b = mp.Pipe()
    local q = mp.Queue()
    local v = mp.Value("i", 0)
    local pool <close> = mp.Pool(4); print(pool:map(f, {1, 2, 3})[1])

Where Lua and Python differ: see docs/multiprocessing.md.
]]

local _mp = require "_multiprocessing"
local Object = require "gilua.class"
local exc = require "gilua.exceptions"
local args = require "gilua.args"
local threading = require "threading"
require "queue"      -- defines queue.Empty/Full, which _multiprocessing raises
local time = require "time"
local util = require "multiprocessing._util"
local synchronize = require "multiprocessing.synchronize"
local sharedctypes = require "multiprocessing.sharedctypes"

local RuntimeError, ValueError, TypeError = exc.RuntimeError, exc.ValueError, exc.TypeError
local AssertionError, SystemExit = exc.AssertionError, exc.SystemExit
local type, select, error, tostring, pcall, xpcall, next, getmetatable =
  type, select, error, tostring, pcall, xpcall, next, getmetatable
local monotonic, sleep = time.monotonic, time.sleep
local is_options = args.is_options
local no_args, check_int = util.no_args, util.check_int

local M = {}

M.ProcessError = exc.Exception:extend("multiprocessing.ProcessError")
M.BufferTooShort = M.ProcessError:extend("multiprocessing.BufferTooShort")
M.TimeoutError = M.ProcessError:extend("multiprocessing.TimeoutError")
M.AuthenticationError = M.ProcessError:extend("multiprocessing.AuthenticationError")

M.cpu_count = _mp.cpu_count
M.dumps, M.loads = _mp.dumps, _mp.loads

local EMPTY = { n = 0 }

-- Start methods ----------------------------------------------------------------

local start_method = nil
local METHODS = { fork = true, spawn = true }

function M.get_all_start_methods() return { "fork", "spawn" } end

function M.get_start_method(allow_none)
  if start_method == nil and not allow_none then start_method = "fork" end
  return start_method
end

function M.set_start_method(method, force)
  if is_options(method) then method, force = method.method, method.force end
  if start_method ~= nil and not force then
    error(RuntimeError("context has already been set"), 2)
  end
  if method ~= nil and not METHODS[method] then
    error(ValueError("cannot find context for " .. tostring(method)), 2)
  end
  start_method = method
end

local contexts = {}

-- get_context(method): the module itself with a Process class whose
-- start method is `method` (nil: the current default).
function M.get_context(method)
  if method == nil then return M end
  if not METHODS[method] then
    error(ValueError("cannot find context for " .. tostring(method)), 2)
  end
  local ctx = contexts[method]
  if ctx == nil then
    local P = M.Process:extend("multiprocessing.context." .. method:sub(1, 1):upper() ..
                               method:sub(2) .. "Process")
    P._start_method = method
    ctx = setmetatable({ Process = P, _name = method }, { __index = function(t, k)
      -- the pool and the manager of a context start their processes its way
      if k == "Pool" then
        local Pool = require("multiprocessing.pool").Pool:extend()
        Pool._context = t
        rawset(t, k, Pool)
        return Pool
      elseif k == "Manager" then
        local f = function() return require("multiprocessing.managers")._start_manager(t) end
        rawset(t, k, f)
        return f
      end
      return M[k]
    end })
    function ctx.get_start_method() return method end
    contexts[method] = ctx
  end
  return ctx
end

-- Processes --------------------------------------------------------------------

local _children = {}            -- started, not yet reaped: process -> true
local _counter = 0
local _current, _parent         -- this process, its parent (nil in the main one)

local Process = Object:extend("multiprocessing.Process")
M.Process = Process

local PROCESS_ARGS = { "group", "target", "name", "args", "kwargs", "daemon",
                       fname = "Process" }

function Process:init(...)
  local group, target, name, a, kwargs, daemon = args.get(PROCESS_ARGS, ...)
  if group ~= nil then error(AssertionError("group argument must be None for now"), 2) end
  if target ~= nil then args.check(target, "callable", "Process", "target") end
  if a ~= nil then args.check(a, "table", "Process", "args") end
  if kwargs ~= nil then args.check(kwargs, "table", "Process", "kwargs") end
  if name ~= nil then args.check(name, "string", "Process", "name") end
  _counter = _counter + 1
  self._identity = _counter
  self._target, self._args, self._kwargs = target, a or EMPTY, kwargs
  local prefix = _current and _current._name_prefix or ""
  self.name = name ~= nil and tostring(name) or ("Process-" .. prefix .. _counter)
  if daemon == nil then daemon = _current ~= nil and _current.daemon or false end
  self.daemon = daemon and true or false
  self._authkey = _current and _current.authkey   -- a child gets its parent's
  self._started = false
  self._initialized = true
end

-- authkey: the process's authentication key (Python's), the default key
-- of the managers it makes and connects to: random in the main process,
-- a child's is its parent's.
Process:property("authkey", function(self)
  local key = rawget(self, "_authkey")
  if key == nil then
    key = _mp.random(32)
    rawset(self, "_authkey", key)
  end
  return key
end, function(self, key)
  rawset(self, "_authkey", args.check(key, "string", "Process.authkey", "authkey"))
end)

function Process:run()
  local target = self._target
  if target == nil then return end
  return args.apply(target, self._args, self._kwargs)
end

local function check_not_closed(self)
  if self._closed then error(ValueError("process object is closed"), 3) end
end

-- Forgets the children that ended (Python's _cleanup), so none stays a zombie.
local function reap()
  for p in next, _children do
    local code = _mp.waitpid(p.pid, false)
    if code ~= nil then p:_finished(code) end
  end
end

function Process:_finished(code)
  self._exitcode = code
  _children[self] = nil
  if self._pidfd then _mp.close(self._pidfd); self._pidfd = nil end
end

local function child_traceback(e)
  if type(e) == "table" and exc.BaseException:is(e) then return e end
  return { msg = e, tb = debug.traceback(tostring(e), 2) }
end

-- Runs a process object in its own (new) process, reports an error as
-- Python does, and leaves with the exit code; never returns.
local function run_child(self)
  local code = 0
  local ok, err = pcall(function()
    local ok, e = xpcall(self.run, child_traceback, self)
    if not ok then
      if SystemExit:is(e) then
        local c = e.code
        if c == nil then code = 0
        elseif math.type(c) == "integer" then code = c
        else io.stderr:write(tostring(c), "\n"); code = 1 end
      else
        local out
        if type(e) == "table" and e.tb then out = e.tb
        else out = tostring(e.traceback or "") .. "\n" .. tostring(e) end
        io.stderr:write("Process ", tostring(self.name), ":\n", out, "\n")
        code = 1
      end
    end
    threading._shutdown()
  end)
  if not ok then
    pcall(io.stderr.write, io.stderr, "Process ", tostring(self.name), ": ", tostring(err), "\n")
    code = 1
  end
  _mp._exit(code & 0xff)
end

-- The child's side of a forked start().
local function bootstrap(self)
  local ok, err = pcall(function()
    threading._after_fork()
    _children = {}
    _parent = { pid = os.getppid(), name = _current.name }
    _current = self
    self.pid = os.getpid()
    self._name_prefix = (self._name_prefix or "") .. self._identity .. ":"
    _counter = 0
  end)
  if not ok then
    pcall(io.stderr.write, io.stderr, "Process ", tostring(self.name), ": ", tostring(err), "\n")
    _mp._exit(1)
  end
  run_child(self)
end

-- spawn ----------------------------------------------------------------------------

local _loading_main = false

local BOOTSTRAP_MSG = [[
An attempt has been made to start a new process before the
current process has finished its bootstrapping phase.

This probably means that you are not using fork to start your
child processes and you have forgotten to use the proper idiom
in the main module:

    if __name__ == "__main__" then
        ...
    end

The main script is run again, as __mp_main__, in every process that
the spawn start method starts.]]

--[[ spawn: a new gilua runs `require("multiprocessing")._spawn_main(fd)`
with one end of a socket pair; it gets the parent's module paths, `arg`
and main script (which it runs with __name__ == "__mp_main__"), then the
process object itself, serialized (its target travels as bytecode). ]]
local spawn_fds   -- while spawn serializes a process: descriptors to pass

--[[ The descriptor by which the other end finds a shared object again: in
a spawned child the same number (inherited); in another interpreter of
this process (concurrent.interpreters) a duplicate, which the rebuilt
object owns, so that the object is shared there, not copied. nil when the
object is going nowhere it can be shared. ]]
local _interp = require "_interpreters"
local function passing(fd)
  if fd < 0 then return fd end
  if spawn_fds ~= nil then
    spawn_fds[#spawn_fds + 1] = fd
    return fd
  end
  if _interp.crossing() then return _interp.dupfd(fd) end
end

-- Connections reach a spawned child as inherited descriptors (the same
-- numbers there); anywhere else they only travel by fork.
function M._rebuild_connection(state)
  return _mp.Connection(state[1], state[2])
end

do
  local a, b = _mp.Pipe()
  getmetatable(a).__mp_reduce = function(c)
    local r, w = c:_fds()
    local r2 = passing(r)
    if r2 == nil then
      error(RuntimeError("a Connection can only be passed to a child process when it " ..
                         "starts (inherited with fork, or in the arguments of a spawned process)"), 0)
    end
    return M._rebuild_connection, { r2, w == r and r2 or passing(w) }
  end
  a:close(); b:close()
end

local function spawn_start(self)
  if _loading_main then error(RuntimeError(BOOTSTRAP_MSG), 3) end
  spawn_fds = {}
  local okd, payload = pcall(_mp.dumps, self)
  local keep = spawn_fds
  spawn_fds = nil
  if not okd then error(payload, 0) end
  local a, b = _mp.Pipe(true)
  local fd = b:fileno()
  keep[#keep + 1] = fd
  if self._keep_fds then
    for _, fd in ipairs(self._keep_fds) do keep[#keep + 1] = fd end
  end
  local exe = _mp.executable()
  local pid = _mp.spawnv(exe, { exe, "-e",
    ("require('multiprocessing')._spawn_main(%d)"):format(fd) }, keep)
  b:close()
  local main = util.main_script()
  local script_args = {}
  if type(arg) == "table" then
    for i = 0, #arg do script_args[i] = arg[i] end
  end
  local ok, err = pcall(function()
    a:send({ main = main, arg = script_args, path = package.path, cpath = package.cpath,
             parent_name = _current.name, name = self.name, authkey = self.authkey,
             prefix = (_current._name_prefix or "") .. self._identity .. ":" })
    a:send_bytes(payload)
  end)
  a:close()
  if not ok then
    _mp.kill(pid, _mp.SIGKILL)
    _mp.waitpid(pid, true)
    error(err, 0)
  end
  return pid
end

function M._spawn_main(fd)
  local conn = _mp.Connection(fd, fd)
  local prep = conn:recv()
  package.path, package.cpath = prep.path, prep.cpath
  _parent = { pid = os.getppid(), name = prep.parent_name }
  _current = setmetatable({ name = prep.name, pid = os.getpid(), daemon = false,
                            _name_prefix = prep.prefix, _identity = 0,
                            _authkey = prep.authkey }, Process)
  _G.arg = prep.arg
  _G.__name__ = "__mp_main__"
  if prep.main then
    _loading_main = true
    local ok, err = xpcall(function()
      local chunk = assert(loadfile(prep.main))
      chunk(table.unpack(prep.arg, 1, #prep.arg))
    end, function(e) return debug.traceback(tostring(e), 2) end)
    _loading_main = false
    if not ok then
      io.stderr:write("Process ", tostring(prep.name), ":\n", tostring(err), "\n")
      _mp._exit(1)
    end
  end
  local payload = conn:recv_bytes()
  conn:close()
  local self = _mp.loads(payload)
  self.pid = os.getpid()
  self._name_prefix = prep.prefix
  _current = self
  _counter = 0
  run_child(self)
end

function Process:start()
  check_not_closed(self)
  if not self._initialized then error(RuntimeError("Process.init() not called"), 2) end
  if self._started then error(AssertionError("cannot start a process twice"), 2) end
  if _current ~= nil and _current.daemon then
    error(AssertionError("daemonic processes are not allowed to have children"), 2)
  end
  if _current ~= nil and self._parent_pid == nil then self._parent_pid = os.getpid() end
  reap()
  self._parent_pid = os.getpid()
  local pid
  if (self._start_method or M.get_start_method()) == "spawn" then
    pid = spawn_start(self)
  else
    pid = _mp.fork()
    if pid == 0 then bootstrap(self) end
  end
  self._started = true
  self.pid = pid
  self._pidfd = _mp.pidfd(pid)
  _children[self] = true
end

local function check_child(self, what)
  if not self._started then error(AssertionError("can only " .. what .. " a started process"), 3) end
  if self._parent_pid ~= os.getpid() then
    error(AssertionError("can only " .. what .. " a child process"), 3)
  end
end

function Process:join(timeout)
  check_not_closed(self)
  check_child(self, "join")
  timeout = args.timeout(timeout, "Process.join")
  if self._exitcode ~= nil then return end
  -- The pidfd is waited for (Ctrl-C ends that wait at once), then the
  -- child is collected without blocking.
  local deadline = timeout and monotonic() + timeout
  while self._exitcode == nil do
    local code = _mp.waitpid(self.pid, false)
    if code ~= nil then self:_finished(code); break end
    local left = deadline and deadline - monotonic()
    if left and left <= 0 then break end
    if self._pidfd then _mp.wait({ self._pidfd }, left)
    elseif left then sleep(math.min(left, 0.005))
    else
      code = _mp.waitpid(self.pid, true)
      if code ~= nil then self:_finished(code)
      elseif self._exitcode == nil then sleep(0.001) end  -- another thread reaps it
    end
  end
end

function Process:is_alive()
  check_not_closed(self)
  if self == _current then return true end
  if not self._started or self._exitcode ~= nil then return false end
  if self._parent_pid ~= os.getpid() then return false end
  local code = _mp.waitpid(self.pid, false)
  if code ~= nil then self:_finished(code) end
  return self._exitcode == nil
end

local function signal(self, sig)
  check_not_closed(self)
  if self._started and self._exitcode == nil and self.pid then
    _mp.kill(self.pid, sig)
  end
end

function Process:terminate() signal(self, _mp.SIGTERM) end
function Process:kill() signal(self, _mp.SIGKILL) end

function Process:close()
  if self._closed then return end
  if self._started and self._exitcode == nil then
    local code = _mp.waitpid(self.pid, false)
    if code == nil then
      error(ValueError("Cannot close a process while it is still running. " ..
                       "You should first call join() or terminate()."), 2)
    end
    self:_finished(code)
  end
  self._closed = true
end

Process:property("exitcode", function(self)
  if self._exitcode == nil and self._started and self.pid
     and self._parent_pid == os.getpid() then
    local code = _mp.waitpid(self.pid, false)
    if code ~= nil then self:_finished(code) end
  end
  return self._exitcode
end)

Process:property("sentinel", function(self)
  check_not_closed(self)
  if not self._started then error(ValueError("process not started"), 2) end
  return self._pidfd
end)

Process:property("ident", function(self) return self.pid end)

function Process:__tostring()
  local status
  if self == _current then status = "started"
  elseif not self._started then status = "initial"
  elseif self._closed then status = "closed"
  else
    local code = self.exitcode
    if code == nil then status = "started"
    elseif code == 0 then status = "stopped"
    elseif code < 0 then status = "stopped[SIG" .. (-code) .. "]"
    else status = "stopped exitcode=" .. code end
  end
  return ("<Process name='%s' pid=%s parent=%s %s%s>"):format(
    tostring(self.name), tostring(self.pid), tostring(self._parent_pid), status,
    self.daemon and " daemon" or "")
end

-- The main process: Python's _MainProcess.
local MainProcess = Process:extend("multiprocessing._MainProcess")
function MainProcess:init()
  self.name = "MainProcess"
  self.daemon = false
  self.pid = os.getpid()
  self._started = true
  self._identity = 0
  self._name_prefix = ""
  self._initialized = true
end
function MainProcess:__tostring()
  return "<_MainProcess name='MainProcess' parent=None started>"
end

_current = MainProcess()

function M.current_process() return _current end

function M.parent_process()
  if _parent == nil then return nil end
  return _parent
end

function M.active_children()
  reap()
  local list = {}
  for p in next, _children do list[#list + 1] = p end
  table.sort(list, function(a, b) return a._identity < b._identity end)
  return list
end

-- Exit: daemonic children are terminated, then every child is joined.
threading._register_atexit(function()
  local kids = M.active_children()
  for i = 1, #kids do
    if kids[i].daemon then kids[i]:terminate() end
  end
  for i = 1, #kids do pcall(kids[i].join, kids[i]) end
  _mp.flush_feeders()
end)

-- Connections ------------------------------------------------------------------

function M.Pipe(duplex)
  if is_options(duplex) then duplex = duplex.duplex end
  if duplex == nil then duplex = true end
  return _mp.Pipe(duplex and true or false)
end

-- Listener and Client (multiprocessing.connection) are loaded on first use.
local connection = setmetatable({}, { __index = function(t, k)
  if k == "Listener" or k == "Client" then
    local v = require("multiprocessing.connection")[k]
    rawset(t, k, v)
    return v
  end
end })
M.connection = connection
connection.Pipe = M.Pipe

local function fd_of(o, i)
  if math.type(o) == "integer" then return o end
  if Process:is(o) then return o.sentinel end
  if type(o) == "table" and o._q then return o._q:_reader() end
  local ok, fd = pcall(function() return o:fileno() end)
  if ok and math.type(fd) == "integer" then return fd end
  error(TypeError(("wait(): object_list[%d] must be a Connection, a Process, a queue's " ..
                   "reader or a descriptor, not %s"):format(i, args.typename(o))), 3)
end

--[[ Authentication keys, as Python's multiprocessing.connection: the side
that holds the resource sends a random challenge and checks the answer
(HMAC-SHA256 of the challenge under the key) on raw bytes of bounded
length, before anything from the peer is decoded; then the other side does
the same, so each knows the other has the key. With `timeout`, a peer that
does not answer within it (or stops half-way through a message) fails the
handshake: a server is not held by a client that never speaks. The
channel itself is not encrypted. ]]
local CHALLENGE, WELCOME, FAILURE = "#CHALLENGE#", "#WELCOME#", "#FAILURE#"
local AUTH_MAX = 256        -- the longest message either side reads

local function check_key(fname, key)
  if type(key) ~= "string" then
    error(TypeError(("%s(): argument 'authkey' must be a string, not %s")
                    :format(fname, args.typename(key))), 3)
  end
end

-- One message of the handshake, within `timeout` seconds (nil: no limit).
local function recv_auth(conn, timeout)
  if timeout ~= nil and not conn:poll(timeout) then
    error(M.AuthenticationError(("no answer within %g s"):format(timeout)), 0)
  end
  local ok, msg = pcall(conn.recv_bytes, conn, AUTH_MAX)
  if not ok then
    if M.AuthenticationError:is(msg) or exc.KeyboardInterrupt:is(msg) then error(msg, 0) end
    error(M.AuthenticationError("the peer broke off the handshake: " .. tostring(msg)), 0)
  end
  return msg
end

local function handshake(conn, timeout, fn, ...)
  if timeout ~= nil then
    timeout = args.timeout(timeout, "multiprocessing.connection", "zero")
    conn:_settimeout(timeout)
  end
  local ok, err = pcall(fn, conn, timeout, ...)
  if timeout ~= nil then pcall(conn._settimeout, conn, nil) end
  if not ok then error(err, 0) end
end

local function deliver(conn, timeout, key)
  local challenge = CHALLENGE .. _mp.random(32)
  conn:send_bytes(challenge)
  local ok, answer = pcall(recv_auth, conn, timeout)
  if ok and _mp.compare_digest(answer, _mp.hmac_sha256(key, challenge)) then
    conn:send_bytes(WELCOME)
    return
  end
  pcall(conn.send_bytes, conn, FAILURE)
  if not ok and not M.AuthenticationError:is(answer) then error(answer, 0) end
  error(M.AuthenticationError(ok and "digest received was wrong" or answer.message), 0)
end

local function answer(conn, timeout, key)
  local challenge = recv_auth(conn, timeout)
  if challenge:sub(1, #CHALLENGE) ~= CHALLENGE then
    error(M.AuthenticationError("protocol error: expected a challenge"), 0)
  end
  conn:send_bytes(_mp.hmac_sha256(key, challenge))
  local reply = recv_auth(conn, timeout)
  if reply ~= WELCOME then
    error(M.AuthenticationError("digest sent was rejected"), 0)
  end
end

function connection.deliver_challenge(conn, key, timeout)
  check_key("deliver_challenge", key)
  handshake(conn, timeout, deliver, key)
end

function connection.answer_challenge(conn, key, timeout)
  check_key("answer_challenge", key)
  handshake(conn, timeout, answer, key)
end

-- wait(objects, timeout): the connections, sentinels or processes ready.
function connection.wait(list, timeout)
  args.check(list, "table", "wait", "object_list")
  timeout = args.timeout(timeout, "multiprocessing.connection.wait")
  local fds, by = {}, {}
  for i = 1, #list do
    local fd = fd_of(list[i], i)
    fds[i] = fd
    by[fd] = by[fd] or list[i]
  end
  local ready = _mp.wait(fds, timeout)
  local out = {}
  for i = 1, #ready do out[i] = by[ready[i]] end
  return out
end

-- Queues -----------------------------------------------------------------------

local Queue = Object:extend("multiprocessing.Queue")
M.Queue = Queue

function Queue:init(maxsize)
  if is_options(maxsize) then maxsize = maxsize.maxsize end
  if maxsize ~= nil then maxsize = check_int(maxsize, "Queue", "maxsize") end
  self._maxsize = maxsize or 0
  self._q = _mp.queue(maxsize or 0)
end

local function block_args(block, timeout, ...)
  if is_options(block) and select("#", ...) == 0 and timeout == nil then
    return block.block, block.timeout
  end
  return block, timeout
end

function Queue:put(item, ...)
  local block, timeout = block_args(...)
  return self._q:put(item, block, timeout)
end

function Queue:get(...)
  local block, timeout = block_args(...)
  return self._q:get(block, timeout)
end

function Queue:put_nowait(item) return self._q:put(item, false) end
function Queue:get_nowait() return self._q:get(false) end
function Queue:qsize() return self._q:qsize() end
function Queue:empty() return self._q:empty() end
function Queue:full() return self._q:full() end
function Queue:close() return self._q:close() end
function Queue:join_thread() return self._q:join_thread() end
function Queue:cancel_join_thread() return self._q:cancel_join_thread() end

-- Queues reach a spawned child as inherited descriptors: the socket's
-- ends and the memfd of their shared block.
function M._rebuild_queue(state)
  return _mp.queue_from(state[1], state[2], state[3])
end

do
  local q = _mp.queue(0)
  getmetatable(q).__mp_reduce = function(u)
    local r, w, sh = u:_fds()
    local r2 = passing(r)
    if r2 == nil then
      error(RuntimeError("Queue objects should only be shared between processes " ..
                         "through inheritance"), 0)
    end
    return M._rebuild_queue, { r2, passing(w), passing(sh) }
  end
end

-- Locks and shared values reach a spawned child the same way: their
-- shared memory is a memfd, mapped again there.
function M._rebuild_semlock(fd) return _mp.semlock_from(fd) end
function M._rebuild_rawshm(state) return _mp.rawshm(state[1], state[2], state[3]) end

do
  local function only_inherited(what)
    error(RuntimeError(what .. " objects should only be shared between processes " ..
                       "through inheritance"), 0)
  end
  local s = _mp.semlock("sem", 1, 1)
  getmetatable(s).__mp_reduce = function(u)
    local fd = passing(u:_fd()) or only_inherited("Lock")
    return M._rebuild_semlock, fd
  end
  local m = _mp.rawshm("b", 1)
  getmetatable(m).__mp_reduce = function(u)
    local fd = passing(u:_fd()) or only_inherited("Shared memory")
    return M._rebuild_rawshm, { u:_typecode(), u:len(), fd }
  end
end

local JoinableQueue = Queue:extend("multiprocessing.JoinableQueue")
M.JoinableQueue = JoinableQueue
function JoinableQueue:task_done() return self._q:task_done() end
function JoinableQueue:join() return self._q:join() end

local SimpleQueue = Object:extend("multiprocessing.SimpleQueue")
M.SimpleQueue = SimpleQueue
function SimpleQueue:init(...)
  no_args("SimpleQueue", ...)
  self._q = _mp.queue(0)
end
function SimpleQueue:put(item) return self._q:put(item) end
function SimpleQueue:get() return self._q:get() end
function SimpleQueue:empty() return self._q:empty() end
function SimpleQueue:close() return self._q:close() end

-- Locks and shared values: multiprocessing.synchronize and
-- multiprocessing.sharedctypes, as in Python's package, given here too.
for _, mod in ipairs({ synchronize, sharedctypes }) do
  for k, v in pairs(mod) do M[k] = v end
end

-- The contexts' Process classes exist from the start: a spawned child
-- finds them by name before its main script asks for them.
M.get_context("fork")
M.get_context("spawn")

-- Later parts: the pool, the manager, shared_memory ------------------------------

local lazy = {
  Pool = "multiprocessing.pool",
  Manager = "multiprocessing.managers",
}

setmetatable(M, { __index = function(t, k)
  local mod = lazy[k]
  if mod then
    local v = require(mod)[k]
    rawset(t, k, v)
    return v
  end
  if k == "shared_memory" or k == "pool" or k == "managers" then
    local v = require("multiprocessing." .. k)
    rawset(t, k, v)
    return v
  end
end })

return M
