--[[
multiprocessing: Python's module on the C core _multiprocessing. Real OS
processes, each with its own interpreter and its own GIL.

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

local RuntimeError, ValueError, TypeError = exc.RuntimeError, exc.ValueError, exc.TypeError
local AssertionError, SystemExit = exc.AssertionError, exc.SystemExit
local type, select, error, tostring, pcall, xpcall, next, getmetatable, rawget =
  type, select, error, tostring, pcall, xpcall, next, getmetatable, rawget
local monotonic, sleep = time.monotonic, time.sleep
local is_options = args.is_options

local M = {}

-- Argument checks shared by the modules of multiprocessing ------------------

-- A constructor or method that takes no argument: Python's TypeError.
local function no_args(fname, ...)
  local n = select("#", ...)
  if n > 0 then
    error(TypeError(("%s() takes no arguments (%d given)"):format(fname, n)), 3)
  end
end
M._no_args = no_args

-- An integer argument (an integral float is taken), at least `min`.
local function check_int(value, fname, argname, min)
  value = args.check(value, "integer", fname, argname)
  if math.type(value) ~= "integer" then
    error(exc.OverflowError(("%s(): argument '%s' is too large: %s")
                            :format(fname, argname, tostring(value))), 3)
  end
  if min and value < min then
    error(ValueError(("%s(): argument '%s' must be at least %d, not %d")
                     :format(fname, argname, min, value)), 3)
  end
  return value
end
M._check_int = check_int

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
        local f = function() return require("multiprocessing.managers").SyncManager(t) end
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
  self._started = false
  self._initialized = true
end

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

-- Connections reach a spawned child as inherited descriptors (the same
-- numbers there); anywhere else they only travel by fork.
function M._rebuild_connection(state)
  return _mp.Connection(state[1], state[2])
end

do
  local a, b = _mp.Pipe()
  getmetatable(a).__mp_reduce = function(c)
    if spawn_fds == nil then
      error(RuntimeError("a Connection can only be passed to a child process when it " ..
                         "starts (inherited with fork, or in the arguments of a spawned process)"), 0)
    end
    local r, w = c:_fds()
    if r >= 0 then spawn_fds[#spawn_fds + 1] = r end
    if w >= 0 and w ~= r then spawn_fds[#spawn_fds + 1] = w end
    return M._rebuild_connection, { r, w }
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
  local main = type(arg) == "table" and arg[0] or nil
  if main == "-" or (main and not io.open(main, "r")) then main = nil end
  local script_args = {}
  if type(arg) == "table" then
    for i = 0, #arg do script_args[i] = arg[i] end
  end
  local ok, err = pcall(function()
    a:send({ main = main, arg = script_args, path = package.path, cpath = package.cpath,
             parent_name = _current.name, name = self.name,
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
                            _name_prefix = prep.prefix, _identity = 0 }, Process)
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

local connection = {}
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
the same, so each knows the other has the key. ]]
local CHALLENGE, WELCOME, FAILURE = "#CHALLENGE#", "#WELCOME#", "#FAILURE#"
local AUTH_MAX = 256        -- the longest message either side reads

local function check_key(fname, key)
  if type(key) ~= "string" then
    error(TypeError(("%s(): argument 'authkey' must be a string, not %s")
                    :format(fname, args.typename(key))), 3)
  end
end

function connection.deliver_challenge(conn, key)
  check_key("deliver_challenge", key)
  local challenge = CHALLENGE .. _mp.random(32)
  conn:send_bytes(challenge)
  local ok, answer = pcall(conn.recv_bytes, conn, AUTH_MAX)
  if ok and _mp.compare_digest(answer, _mp.hmac_sha256(key, challenge)) then
    conn:send_bytes(WELCOME)
    return
  end
  pcall(conn.send_bytes, conn, FAILURE)
  error(M.AuthenticationError("digest received was wrong"), 2)
end

function connection.answer_challenge(conn, key)
  check_key("answer_challenge", key)
  local challenge = conn:recv_bytes(AUTH_MAX)
  if challenge:sub(1, #CHALLENGE) ~= CHALLENGE then
    error(M.AuthenticationError("protocol error: expected a challenge"), 2)
  end
  conn:send_bytes(_mp.hmac_sha256(key, challenge))
  local reply = conn:recv_bytes(AUTH_MAX)
  if reply ~= WELCOME then
    error(M.AuthenticationError("digest sent was rejected"), 2)
  end
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
    if spawn_fds == nil then
      error(RuntimeError("Queue objects should only be shared between processes " ..
                         "through inheritance"), 0)
    end
    local r, w, sh = u:_fds()
    for _, fd in ipairs({ r, w, sh }) do
      if fd >= 0 then spawn_fds[#spawn_fds + 1] = fd end
    end
    return M._rebuild_queue, { r, w, sh }
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
    if spawn_fds == nil then only_inherited("Lock") end
    local fd = u:_fd()
    spawn_fds[#spawn_fds + 1] = fd
    return M._rebuild_semlock, fd
  end
  local m = _mp.rawshm("b", 1)
  getmetatable(m).__mp_reduce = function(u)
    if spawn_fds == nil then only_inherited("Shared memory") end
    local fd = u:_fd()
    spawn_fds[#spawn_fds + 1] = fd
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

-- Synchronisation ----------------------------------------------------------------

local SemLock = Object:extend("multiprocessing.synchronize.SemLock")

function SemLock:acquire(...)
  if self._s:acquire(...) then return self end
  return false
end
function SemLock:release() return self._s:release() end
function SemLock:__close() return self._s:release() end
SemLock.with = threading._with
function SemLock:_is_mine() return self._s:_is_mine() end
function SemLock:_count() return self._s:_count() end

local Lock = SemLock:extend("multiprocessing.synchronize.Lock")
M.Lock = Lock
function Lock:init(...)
  no_args("Lock", ...)
  self._s = _mp.semlock("sem", 1, 1)
end
function Lock:locked() return self._s:locked() end
function Lock:_is_owned() return self._s:_is_mine() end
function Lock:__tostring()
  return "<Lock(owner=" .. (self._s:locked() and (self._s:_is_mine() and "MainThread" or "SomeOtherThread") or "None") .. ")>"
end

local RLock = SemLock:extend("multiprocessing.synchronize.RLock")
M.RLock = RLock
function RLock:init(...)
  no_args("RLock", ...)
  self._s = _mp.semlock("rlock")
end
function RLock:locked() return self._s:locked() end
function RLock:_is_owned() return self._s:_is_mine() end
function RLock:__tostring() return "<RLock(count=" .. self._s:_count() .. ")>" end

local Semaphore = SemLock:extend("multiprocessing.synchronize.Semaphore")
M.Semaphore = Semaphore
-- The largest count of a semaphore (Linux's SEM_VALUE_MAX): a release
-- past it is a ValueError, as Python's.
local SEM_VALUE_MAX = 2147483647

local function sem_value(value, fname)
  if is_options(value) then value = value.value end
  if value == nil then return 1 end
  value = check_int(value, fname, "value")
  if value < 0 then error(ValueError(fname .. "(): semaphore initial value must be >= 0"), 4) end
  if value > SEM_VALUE_MAX then
    error(exc.OverflowError(("%s(): argument 'value' must be at most %d, not %d")
                            :format(fname, SEM_VALUE_MAX, value)), 4)
  end
  return value
end

function Semaphore:init(value)
  value = sem_value(value, "Semaphore")
  self._s = _mp.semlock("sem", value, -1)
end
function Semaphore:get_value() return self._s:_count() end

local BoundedSemaphore = Semaphore:extend("multiprocessing.synchronize.BoundedSemaphore")
M.BoundedSemaphore = BoundedSemaphore
function BoundedSemaphore:init(value)
  value = sem_value(value, "BoundedSemaphore")
  self._s = _mp.semlock("sem", value, value)
end

local Event = Object:extend("multiprocessing.synchronize.Event")
M.Event = Event
function Event:init(...)
  no_args("Event", ...)
  self._s = _mp.semlock("event", 0)
end
function Event:set() return self._s:set() end
function Event:clear() return self._s:clear() end
function Event:is_set() return self._s:is_set() end
function Event:wait(timeout)
  if is_options(timeout) then timeout = timeout.timeout end
  return self._s:wait(timeout)
end

--[[ Condition: a lock and three counting semaphores in shared memory, so
that waiters in any process can be woken. A waiter counts itself asleep,
lets the lock go and sleeps on `wait_sem`; notify(n) releases `wait_sem`
once per sleeper it wakes and waits until each has counted itself woken, so
a notification cannot be taken by a later waiter. ]]
local Condition = Object:extend("multiprocessing.synchronize.Condition")
M.Condition = Condition

function Condition:init(lock)
  if is_options(lock) then lock = lock.lock end
  if lock ~= nil and not (Lock:is(lock) or RLock:is(lock)) then
    error(TypeError("Condition(): argument 'lock' must be a multiprocessing Lock or RLock, not " ..
                    args.typename(lock)), 3)
  end
  self._lock = lock or RLock()
  self._sleeping = _mp.semlock("sem", 0)
  self._woken = _mp.semlock("sem", 0)
  self._wait_sem = _mp.semlock("sem", 0)
end

function Condition:acquire(...)
  if self._lock:acquire(...) then return self end
  return false
end
function Condition:release() return self._lock:release() end
function Condition:__close() return self._lock:release() end
function Condition:with(fn, ...) return self._lock:with(fn, ...) end

local function check_owned(self, what)
  if not self._lock:_is_mine() then
    error(RuntimeError("cannot " .. what .. " on un-acquired lock"), 3)
  end
end

function Condition:wait(timeout)
  if is_options(timeout) then timeout = timeout.timeout end
  timeout = args.timeout(timeout, "Condition.wait")
  check_owned(self, "wait")
  self._sleeping:release()
  local n = 1
  if RLock:is(self._lock) then n = self._lock:_count() end
  for _ = 1, n do self._lock:release() end
  local ok = self._wait_sem:acquire(true, timeout)
  self._woken:release()
  for _ = 1, n do self._lock:acquire() end
  return ok
end

function Condition:notify(n)
  if is_options(n) then n = n.n end
  n = n == nil and 1 or check_int(n, "Condition.notify", "n")
  check_owned(self, "notify")
  -- forget the sleepers that timed out
  while self._woken:acquire(false) do
    self._sleeping:acquire(false)
  end
  local woken = 0
  while woken < n and self._sleeping:acquire(false) do
    self._wait_sem:release()
    woken = woken + 1
  end
  for _ = 1, woken do self._woken:acquire() end
  while self._wait_sem:acquire(false) do end
end

function Condition:notify_all() return self:notify(math.maxinteger) end

function Condition:wait_for(predicate, timeout)
  timeout = args.timeout(timeout, "Condition.wait_for")
  local result = predicate()
  if result then return result end
  local deadline = timeout and monotonic() + timeout
  while not result do
    local left
    if deadline then
      left = deadline - monotonic()
      if left <= 0 then break end
    end
    self:wait(left)
    result = predicate()
  end
  return result
end

--[[ Barrier: the state lives in a shared array (count waiting, generation,
broken) guarded by a Condition. ]]
local Barrier = Object:extend("multiprocessing.synchronize.Barrier")
M.Barrier = Barrier
M.BrokenBarrierError = threading.BrokenBarrierError

function Barrier:init(parties, action, timeout)
  if is_options(parties) then
    parties, action, timeout = parties.parties, parties.action, parties.timeout
  end
  parties = check_int(parties, "Barrier", "parties")
  if parties < 1 then error(ValueError("Barrier(): parties must be > 0"), 3) end
  if action ~= nil then args.check(action, "callable", "Barrier", "action") end
  if timeout ~= nil then args.check(timeout, "number", "Barrier", "timeout") end
  self.parties = parties
  self._action, self._timeout = action, args.timeout(timeout, "Barrier")
  self._cond = Condition(Lock())
  self._st = _mp.rawshm("q", 3)      -- waiting, generation, broken
end

function Barrier:wait(timeout)
  if is_options(timeout) then timeout = timeout.timeout end
  timeout = args.timeout(timeout, "Barrier.wait")
  if timeout == nil then timeout = self._timeout end
  local c, st = self._cond, self._st
  c:acquire()
  if st:get(3) ~= 0 then c:release(); error(M.BrokenBarrierError(), 2) end
  local index = st:get(1)
  local gen = st:get(2)
  st:set(1, index + 1)
  if index + 1 == self.parties then
    local ok, e = true, nil
    if self._action then ok, e = pcall(self._action) end
    if not ok then st:set(3, 1) end
    st:set(1, 0)
    st:set(2, gen + 1)
    c:notify_all()
    c:release()
    if not ok then error(e, 0) end
    return index
  end
  local got = c:wait_for(function() return st:get(2) ~= gen or st:get(3) ~= 0 end, timeout)
  if not got then
    st:set(3, 1)
    c:notify_all()
  end
  local broken = st:get(2) == gen
  if broken then st:set(1, st:get(1) - 1) end
  c:release()
  if broken then error(M.BrokenBarrierError(), 2) end
  return index
end

function Barrier:abort()
  local c = self._cond
  c:acquire()
  self._st:set(3, 1)
  c:notify_all()
  c:release()
end

function Barrier:reset()
  local c = self._cond
  c:acquire()
  if self._st:get(1) > 0 then self._st:set(3, 1); c:notify_all() end
  self._st:set(3, 0)
  self._st:set(1, 0)
  self._st:set(2, self._st:get(2) + 1)
  c:release()
end

Barrier:property("n_waiting", function(self) return self._st:get(1) end)
Barrier:property("broken", function(self) return self._st:get(3) ~= 0 end)

-- Shared values ------------------------------------------------------------------


local TYPECODES = "bBhHiIlLqQfdc"

local function check_typecode(typecode, fname)
  if type(typecode) ~= "string" or #typecode ~= 1 or not TYPECODES:find(typecode, 1, true) then
    error(TypeError(("%s(): bad typecode (must be b, B, h, H, i, I, l, L, q, Q, f, d or c), not %s")
                    :format(fname, type(typecode) == "string" and ("'" .. typecode .. "'")
                                   or args.typename(typecode))), 3)
  end
end

-- Stores v at i; an error names the caller if v does not fit the type.
local function store(m, i, v, fname, what)
  local ok, err = pcall(m.set, m, i, v)
  if not ok then
    local msg = tostring(type(err) == "table" and err.message or err)
    error(TypeError(("%s(): %s: %s"):format(fname, what, msg)), 3)
  end
end

local RawValue = Object:extend("multiprocessing.sharedctypes.RawValue")
M.RawValue = function(typecode, ...)
  check_typecode(typecode, "RawValue")
  local m = _mp.rawshm(typecode, 1)
  local n = select("#", ...)
  local v = setmetatable({ _m = m, _typecode = typecode }, RawValue)
  if n > 0 and (...) ~= nil then store(m, 1, (...), "RawValue", "bad initial value") end
  return v
end
RawValue:property("value", function(self) return self._m:get(1) end,
                           function(self, x) self._m:set(1, x) end)
function RawValue:__tostring()
  return ("c_%s(%s)"):format(self._typecode, tostring(self._m:get(1)))
end

local Value = Object:extend("multiprocessing.sharedctypes.Synchronized")
function Value:get_lock() return self._lock end
function Value:get_obj() return self._raw end
function Value:acquire(...) if self._lock:acquire(...) then return self end return false end
function Value:release() return self._lock:release() end
function Value:__close() return self._lock:release() end
Value:property("value", function(self) return self._m:get(1) end,
                        function(self, x) self._m:set(1, x) end)
function Value:__tostring()
  return ("<Synchronized wrapper for c_%s(%s)>"):format(self._typecode, tostring(self._m:get(1)))
end

-- The lock option of Value and Array: true (a new RLock), false (none) or
-- a lock of one's own, which must have acquire and release (Python's check).
local function lock_arg(opts, fname)
  local lock = true
  if opts ~= nil and not is_options(opts) then
    error(TypeError(("%s(): the options must be a table such as {lock = false}, not %s")
                    :format(fname, args.typename(opts))), 3)
  end
  if opts then
    for k in next, opts do
      if k ~= "lock" then
        error(TypeError(("%s(): unexpected keyword argument '%s'"):format(fname, tostring(k))), 3)
      end
    end
    if opts.lock ~= nil then lock = opts.lock end
  end
  if lock ~= true and lock ~= false then
    local ok, acq, rel = pcall(function() return lock.acquire, lock.release end)
    if not ok or not (args.callable(acq) and args.callable(rel)) then
      error(exc.AttributeError(("%s(): lock %s has no method 'acquire'")
                               :format(fname, args.typename(lock))), 3)
    end
  end
  return lock
end

function M.Value(typecode, ...)
  local n = select("#", ...)
  local init, opts = ...
  if n == 1 and is_options(init) then init, opts = nil, init; n = 0 end
  check_typecode(typecode, "Value")
  local lock = lock_arg(opts, "Value")
  local raw = M.RawValue(typecode)
  if n > 0 and init ~= nil then store(raw._m, 1, init, "Value", "bad initial value") end
  if lock == false then return raw end
  if lock == true then lock = RLock() end
  return setmetatable({ _m = raw._m, _raw = raw, _lock = lock, _typecode = typecode }, Value)
end

-- Arrays: indexed 1..n, with #.
local ARRAY_METHODS = {}
local function array_mt(name, methods)
  return {
    __name = name,
    __index = function(self, k)
      if math.type(k) == "integer" then return rawget(self, "_m"):get(k) end
      if k == "value" and rawget(self, "_typecode") == "c" then
        return (rawget(self, "_m"):bytes():gsub("%z.*", ""))
      end
      if k == "raw" and rawget(self, "_typecode") == "c" then return rawget(self, "_m"):bytes() end
      return methods[k]
    end,
    __newindex = function(self, k, v)
      if math.type(k) == "integer" then return rawget(self, "_m"):set(k, v) end
      error(exc.AttributeError("cannot set '" .. tostring(k) .. "' on an Array"), 2)
    end,
    __len = function(self) return rawget(self, "_m"):len() end,
    __close = function(self) return rawget(self, "_lock"):release() end,
    __tostring = function(self)
      local m, out = rawget(self, "_m"), {}
      for i = 1, m:len() do out[i] = tostring(m:get(i)) end
      return ("<%s c_%s_Array_%d [%s]>"):format(name, rawget(self, "_typecode"), m:len(),
                                               table.concat(out, ", "))
    end,
  }
end

function ARRAY_METHODS.get_lock(self) return rawget(self, "_lock") end
function ARRAY_METHODS.get_obj(self) return rawget(self, "_raw") end
function ARRAY_METHODS.acquire(self, ...)
  if rawget(self, "_lock"):acquire(...) then return self end
  return false
end
function ARRAY_METHODS.release(self) return rawget(self, "_lock"):release() end
function ARRAY_METHODS.totable(self)
  local m, t = rawget(self, "_m"), {}
  for i = 1, m:len() do t[i] = m:get(i) end
  return t
end

local RAW_ARRAY = array_mt("RawArray", ARRAY_METHODS)
local SYNC_ARRAY = array_mt("SynchronizedArray", ARRAY_METHODS)

local function raw_array(typecode, size_or_values, fname)
  check_typecode(typecode, fname)
  local values
  if type(size_or_values) == "table" then values = size_or_values end
  local n = values and #values or size_or_values
  if type(size_or_values) == "string" then
    values, n = {}, #size_or_values
    for i = 1, n do values[i] = size_or_values:sub(i, i) end
  end
  if math.type(n) ~= "integer" then
    error(TypeError(("%s(): argument 'size_or_initializer' must be an integer, a table or a string, not %s")
                    :format(fname, args.typename(size_or_values))), 3)
  end
  if n < 0 then
    error(ValueError(("%s(): array length must be >= 0, not %d"):format(fname, n)), 3)
  end
  if n > (1 << 40) then
    error(exc.OverflowError(("%s(): array length %d is too large"):format(fname, n)), 3)
  end
  local m = _mp.rawshm(typecode, n)
  if values then
    for i = 1, n do store(m, i, values[i], fname, ("bad value at index %d"):format(i)) end
  end
  return setmetatable({ _m = m, _typecode = typecode }, RAW_ARRAY)
end

function M.RawArray(typecode, size_or_values)
  return raw_array(typecode, size_or_values, "RawArray")
end

function M.Array(typecode, size_or_values, opts)
  local lock = lock_arg(opts, "Array")
  local raw = raw_array(typecode, size_or_values, "Array")
  if lock == false then return raw end
  if lock == true then lock = RLock() end
  return setmetatable({ _m = rawget(raw, "_m"), _raw = raw, _lock = lock,
                        _typecode = typecode }, SYNC_ARRAY)
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
