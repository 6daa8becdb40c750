--[[
threading: Python's threading module, built on the C module _thread.

Where Lua and Python differ:
  * Keyword arguments are one options table: Thread{target = f, args = {1, 2},
    kwargs = t, name = "w", daemon = true}. Positional order is Python's
    (group, target, name, args, kwargs, daemon); group must be nil.
    `args` is unpacked with its `n` field if present (table.pack), else #args;
    `kwargs`, when given, is passed to target as one extra last argument.
  * Unnamed threads are "Thread-N"; threads this module did not start get a
    "Dummy-N" object (daemon), kept until a Thread reuses their ident.
  * name, ident, native_id and daemon are fields: changing daemon after
    start is not refused, and it is read when the program exits.
  * stack_size([size]) sets the stack size of threads started afterwards,
    as Python's: 0 (the default) is the system's default (the soft
    RLIMIT_STACK, commonly 8 MiB, of which only the pages used are memory),
    else at least 32 KiB; it returns the previous setting.
  * Every lock-like object (Lock, RLock, Condition, Semaphore,
    BoundedSemaphore) has acquire returning the object itself or false, so
    `local _ <close> = x:acquire()` is Python's `with x:`, and
    `x:with(fn, ...)` runs fn holding it.
  * excepthook(args): args.exc_type is the exception's class, or nil when
    the error value is not a class instance (a plain string error);
    args.exc_traceback is a traceback string.
  * Barrier:wait returns Python's arrival index, 0 .. parties-1 in order of
    arrival (not 1-based).
  * Condition.wait, Event.wait and Semaphore.acquire treat a negative
    timeout as 0, as Python's threading.py does.
  * threading.local (also local_): the data of a thread is dropped when
    that thread's run ends; a subclass's init runs again, with the
    constructor's arguments, the first time each thread touches the object.
]]

local _thread = require "_thread"
local Object = require "gilua.class"
local exc = require "gilua.exceptions"
local args = require "gilua.args"
local time = require "time"

local RuntimeError, ValueError, TypeError = exc.RuntimeError, exc.ValueError, exc.TypeError
local AssertionError, SystemExit = exc.AssertionError, exc.SystemExit
local BaseException = exc.BaseException

local allocate_lock, RLock = _thread.allocate_lock, _thread.RLock
local get_ident, get_native_id = _thread.get_ident, _thread.get_native_id
local monotonic, sleep = time.monotonic, time.sleep
local next, pcall, xpcall, error, tostring, select, getmetatable, rawget =
  next, pcall, xpcall, error, tostring, select, getmetatable, rawget
local unpack, huge, traceback = table.unpack, math.huge, debug.traceback

local M = {}

M.TIMEOUT_MAX = _thread.TIMEOUT_MAX or 9223372036.0
M.Lock = allocate_lock
M.RLock = RLock
M.get_ident = get_ident
M.get_native_id = get_native_id
M.stack_size = _thread.stack_size

M.BrokenBarrierError = RuntimeError:extend("threading.BrokenBarrierError")
M.TIMEOUT_MAX = args.TIMEOUT_MAX     -- the largest timeout a wait accepts
local BrokenBarrierError = M.BrokenBarrierError

local is_options, apply = args.is_options, args.apply

-- The one rule for timeouts (gilua.args): a negative one does not wait,
-- as threading.py's; NaN, inf and huge ones are errors.
local function check_timeout(t, fname)
  return args.timeout(t, fname)
end

-- Shared by the Lua lock-likes: `with` as a function, errors passed on after
-- the release.
local function with_done(self, ok, ...)
  self:release()
  if not ok then error((...), 0) end
  return ...
end

local function with(self, fn, ...)
  self:acquire()
  return with_done(self, pcall(fn, ...))
end
M._with = with              -- for the lock-likes of other modules

-- Condition ------------------------------------------------------------------

--[[
Waiters queue in self._q[self._head .. self._tail]; each is a Lock that the
waiter holds and blocks on until a notifier releases it. Every change to the
queue happens while holding self._lock. A waiter that times out leaves
`false` in its slot. Waiter locks that are known to be held and unreferenced
are kept in self._pool for the next wait.
]]
local Condition = Object:extend("threading.Condition")
M.Condition = Condition

local CONDITION_ARGS = { "lock", fname = "Condition" }

function Condition:init(...)
  local lock = args.get(CONDITION_ARGS, ...)
  if lock == nil then lock = RLock()
  else  -- Python fails at once on an object that is not a lock
    local ok, acq, rel = pcall(function() return lock.acquire, lock.release end)
    if not (ok and acq and rel) then
      error(TypeError(("Condition(): argument 'lock' must be a lock (with acquire and release), not %s")
        :format(args.typename(lock))), 3)
    end
  end
  self._lock = lock
  self._q, self._head, self._tail = {}, 1, 0
  self._pool = {}
  -- The C locks know their owner; other lock objects get Python's
  -- fallbacks (probe for "owned", plain release/acquire around waits).
  local ok, owned = pcall(function() return lock._is_owned end)
  self._native = ok and owned ~= nil
end

-- The lock's acquire (returning the Condition) and release, in C.
Condition.acquire = _thread.cond_acquire
Condition.release = _thread.cond_release
Condition.__close = _thread.cond_release

function Condition:with(fn, ...)
  return self._lock:with(fn, ...)
end

function Condition:_is_owned()
  local lock = self._lock
  if self._native then return lock:_is_owned() end
  if lock:acquire(false) then
    lock:release()
    return false
  end
  return true
end

local function wake(cond, n)
  local q, h, t = cond._q, cond._head, cond._tail
  while n > 0 and h <= t do
    local w = q[h]
    q[h] = nil
    h = h + 1
    if w then
      w:release()
      n = n - 1
    end
  end
  if h > t then h, t = 1, 0 end
  cond._head, cond._tail = h, t
end

-- The wait itself, for callers that know they hold the lock.
function Condition:_wait(timeout)
  local pool, w = self._pool, nil
  local np = #pool
  if np > 0 then
    w = pool[np]
    pool[np] = nil
  else
    w = allocate_lock()
    w:acquire()
  end
  local tail = self._tail + 1
  self._tail = tail
  self._q[tail] = w
  local lock, saved = self._lock, nil
  if self._native then saved = lock:_release_save() else lock:release() end
  local ok, got
  if timeout == nil then
    ok, got = pcall(w.acquire, w)
  elseif timeout > 0 then
    ok, got = pcall(w.acquire, w, true, timeout)
  else
    ok, got = pcall(w.acquire, w, false)
  end
  if self._native then lock:_acquire_restore(saved) else lock:acquire() end
  if ok and got then
    pool[#pool + 1] = w
  else
    -- Still queued means still held by us: take it out and keep it. Gone
    -- means a notifier released it just as we gave up.
    local q = self._q
    for i = self._head, self._tail do
      if q[i] == w then
        q[i] = false
        pool[#pool + 1] = w
        break
      end
    end
  end
  if not ok then error(got, 0) end
  return got and true or false
end

function Condition:wait(timeout)
  if is_options(timeout) then timeout = timeout.timeout end
  check_timeout(timeout, "Condition.wait")
  if not self:_is_owned() then
    error(RuntimeError("cannot wait on un-acquired lock"), 2)
  end
  return self:_wait(timeout)
end

function Condition:wait_for(predicate, timeout)
  if is_options(predicate) then
    predicate, timeout = predicate.predicate, predicate.timeout
  end
  args.check(predicate, "callable", "Condition.wait_for", "predicate")
  check_timeout(timeout, "Condition.wait_for")
  local result = predicate()
  local deadline
  while not result do
    local wait = timeout
    if timeout ~= nil then
      local now = monotonic()
      deadline = deadline or now + timeout
      wait = deadline - now
      if wait <= 0 then break end
    end
    self:wait(wait)
    result = predicate()
  end
  return result
end

function Condition:notify(n)
  if is_options(n) then n = n.n end
  if n == nil then n = 1 else n = args.check(n, "number", "Condition.notify", "n") end
  if not self:_is_owned() then
    error(RuntimeError("cannot notify on un-acquired lock"), 2)
  end
  wake(self, n)
end

function Condition:notify_all()
  if not self:_is_owned() then
    error(RuntimeError("cannot notify on un-acquired lock"), 2)
  end
  wake(self, huge)
end

function Condition:__tostring()
  return "<Condition(" .. tostring(self._lock) .. ", " ..
         (self._tail - self._head + 1) .. ")>"
end

-- Semaphore ------------------------------------------------------------------

--[[
The counter lives in C (_thread.semaphore, in the _sem field) and the
methods are C functions: taking or giving back a unit is atomic under the
GIL without an inner lock, and a blocked acquire waits on the counter's own
wait queue. Python does not promise in which order waiters are woken.
]]
local Semaphore = Object:extend("threading.Semaphore")
M.Semaphore = Semaphore

local function sem_init(self, value, fname, bounded)
  if is_options(value) then value = value.value end
  if value == nil then
    value = 1
  else
    value = args.check(value, "integer", fname, "value")
  end
  if value < 0 then
    error(ValueError("semaphore initial value must be >= 0"), 4)
  end
  self._sem = _thread.semaphore(value, bounded and value or -1)
end

function Semaphore:init(value)
  sem_init(self, value, "Semaphore", false)
end

Semaphore.acquire = _thread.sem_acquire
Semaphore.release = _thread.sem_release
Semaphore.__close = _thread.sem_close     -- (self, error): one unit back
Semaphore.with = with

function Semaphore:__tostring()
  return "<" .. rawget(getmetatable(self), "__name") .. " value=" ..
         tostring(self._sem:value()) .. ">"
end

local BoundedSemaphore = Semaphore:extend("threading.BoundedSemaphore")
M.BoundedSemaphore = BoundedSemaphore

function BoundedSemaphore:init(value)
  sem_init(self, value, "BoundedSemaphore", true)
end

-- Event ----------------------------------------------------------------------

local Event = Object:extend("threading.Event")
M.Event = Event

function Event:init()
  self._cond = Condition(allocate_lock())
  self._flag = false
end

function Event:is_set()
  return self._flag
end

function Event:set()
  local cond = self._cond
  local lock = cond._lock
  lock:acquire()
  self._flag = true
  if cond._tail >= cond._head then wake(cond, huge) end
  lock:release()
end

function Event:clear()
  local lock = self._cond._lock
  lock:acquire()
  self._flag = false
  lock:release()
end

function Event:wait(timeout)
  if self._flag then return true end
  if is_options(timeout) then timeout = timeout.timeout end
  check_timeout(timeout, "Event.wait")
  local cond = self._cond
  local lock = cond._lock
  lock:acquire()
  local ok, flag = true, self._flag
  if not flag then ok, flag = pcall(cond._wait, cond, timeout) end
  lock:release()
  if not ok then error(flag, 0) end
  return flag
end

function Event:__tostring()
  return "<threading.Event " .. (self._flag and "set" or "unset") .. ">"
end

-- Threads --------------------------------------------------------------------

--[[
_active maps the ident of every running Thread to its object; _limbo holds
threads between start() and the moment their bootstrap registers them.
Traversals and the insertions that may happen during one hold _registry_lock
(a GIL switch can come between any two instructions of a loop); single
reads and writes need nothing.
]]
local _active, _limbo = {}, {}
local _registry_lock = allocate_lock()
local _counter, _seq = 0, 0
local _locals = setmetatable({}, { __mode = "k" })   -- local object -> per-ident data

local function newname(fmt)
  _counter = _counter + 1
  return fmt:format(_counter)
end

local function next_seq()
  _seq = _seq + 1
  return _seq
end

local Thread = Object:extend("threading.Thread")
M.Thread = Thread

local current_thread          -- defined below
local EMPTY = { n = 0 }
local THREAD_ARGS = { "group", "target", "name", "args", "kwargs", "daemon", fname = "Thread" }

--[[
A Thread is born with every field it writes in its life, false standing
for "none": Thread has properties, so writing a field that does not exist
yet calls the class's __newindex and grows the table, which was most of
the Lua work of a thread's start.
]]
getmetatable(Thread).__call = function(cls, ...)
  local self = setmetatable({
    _target = false, _args = false, _kwargs = false, _name = false,
    daemon = false, _started = false, _stopped = false, _initialized = false,
    _seq = 0, _handle = false, _ident = false, _native_id = false }, cls)
  cls.init(self, ...)
  return self
end

--[[ name is a property so that renaming a running thread also renames it
in gil.stats() and traces (the value lives in _name). ]]
Thread:property("name", function(self) return self._name end,
  function(self, name)
    name = tostring(name)
    self._name = name
    local ident = self.ident
    if ident ~= nil and self:is_alive() then _thread.set_name(name, ident) end
  end)

-- ident and native_id live in _ident and _native_id (false: none yet).
local function id_field(field)
  return function(self) return self[field] or nil end,
         function(self, v) self[field] = v or false end
end
Thread:property("ident", id_field("_ident"))
Thread:property("native_id", id_field("_native_id"))

function Thread:init(...)
  local group, target, name, targs, kwargs, daemon = args.get(THREAD_ARGS, ...)
  if group ~= nil then
    error(AssertionError("group argument must be nil for now (use Thread{target = f})"), 3)
  end
  if target ~= nil then args.check(target, "callable", "Thread", "target") end
  if targs ~= nil then args.check(targs, "table", "Thread", "args") end
  if name == nil or name == "" then name = newname("Thread-%d") else name = tostring(name) end
  if daemon == nil then daemon = current_thread().daemon else daemon = daemon and true or false end
  self._target, self._args, self._kwargs = target or false, targs or EMPTY, kwargs or false
  self.name = name
  self.daemon = daemon
  self._started, self._stopped = false, false
  self._initialized = true
  self._seq = next_seq()
end

function Thread:run()
  local target = self._target
  if not target then return end
  local a, kw = self._args, self._kwargs
  self._target, self._args, self._kwargs = false, false, false
  return apply(target, a, kw)
end

local function exc_class(e)
  if Object:is(e) then return getmetatable(e) end
  return nil
end

local function report(thread, err, tb)
  local hook_args = { exc_type = exc_class(err), exc_value = err,
                      exc_traceback = tb, thread = thread }
  local ok, e2 = pcall(M.excepthook, hook_args)
  if not ok then
    local ok3, s = pcall(tostring, e2)
    io.stderr:write("Exception in threading.excepthook:\n",
                    ok3 and s or "(unprintable error)", "\n")
  end
end

local function forget_locals(ident)
  if next(_locals) == nil then return end
  _registry_lock:acquire()
  for _, per in next, _locals do per[ident] = nil end
  _registry_lock:release()
end

-- The message handler of a thread's run: the error and its traceback.
local function run_failed(e)
  local tb
  if BaseException:is(e) then
    tb = e.traceback
  else
    tb = traceback(nil, 2)
  end
  return { err = e, tb = tb }
end

local function bootstrap(self)
  local ident = get_ident()
  self._ident = ident
  self._native_id = get_native_id()
  _registry_lock:acquire()
  _active[ident] = self
  _limbo[self] = nil
  _registry_lock:release()
  _thread.set_name(self._name)
  local ok, failure = xpcall(self.run, run_failed, self)
  if not ok then report(self, failure.err, failure.tb) end
  forget_locals(ident)
  self._stopped = true
  _registry_lock:acquire()
  if _active[ident] == self then _active[ident] = nil end
  _registry_lock:release()
end

function Thread:start()
  if not self._initialized then
    error(RuntimeError("thread.init() not called"), 2)
  end
  if self._started then
    error(RuntimeError("threads can only be started once"), 2)
  end
  self._started = true
  _registry_lock:acquire()
  _limbo[self] = true
  _registry_lock:release()
  local ok, handle = pcall(_thread.start, function() return bootstrap(self) end)
  if not ok then
    _registry_lock:acquire()
    _limbo[self] = nil
    _registry_lock:release()
    self._started = false
    error(handle, 0)
  end
  self._handle = handle
  self._ident, self._native_id = handle:ident(), handle:native_id()
end

function Thread:is_alive()
  return self._started == true and not self._stopped
end

-- Waits for the end of the thread; overridden by the main and dummy threads.
function Thread:_join(timeout)
  local h = self._handle
  while not h do                 -- start() has not stored its handle yet
    if self._stopped then return end
    sleep(0.001)
    h = self._handle
  end
  if timeout == nil then h:join() else h:join(timeout > 0 and timeout or 0) end
end

function Thread:join(timeout)
  if timeout ~= nil then
    if is_options(timeout) then timeout = timeout.timeout end
    check_timeout(timeout, "Thread.join")
  end
  if not self._initialized then
    error(RuntimeError("Thread.init() not called"), 2)
  end
  if not self._started then
    error(RuntimeError("cannot join thread before it is started"), 2)
  end
  if self == current_thread() then
    error(RuntimeError("cannot join current thread"), 2)
  end
  self:_join(timeout)
end

function Thread:__tostring()
  local cname = rawget(getmetatable(self), "__name") or "Thread"
  cname = cname:match("[^.]*$")
  local status = "initial"
  if self._started then status = "started" end
  if self._stopped then status = "stopped" end
  if self._started and self.ident then status = status .. " " .. tostring(self.ident) end
  if self.daemon then status = status .. " daemon" end
  return "<" .. cname .. "(" .. tostring(self.name) .. ", " .. status .. ")>"
end

-- The main thread: "joined" once _shutdown has begun.
local MainThread = Thread:extend("threading._MainThread")
local _main_lock = allocate_lock()
_main_lock:acquire()

function MainThread:init()
  self.name = "MainThread"
  self.daemon = false
  self.ident = _thread.main_ident()
  if get_ident() == self.ident then self.native_id = get_native_id() end
  self._started, self._stopped = true, false
  self._initialized = true
  self._seq = next_seq()
end

function MainThread:_join(timeout)
  local lock = _main_lock
  local got
  if timeout == nil then got = lock:acquire()
  else got = lock:acquire(true, timeout > 0 and timeout or 0) end
  if got then lock:release() end
end

-- Threads that this module did not start (host threads): always alive.
local DummyThread = Thread:extend("threading._DummyThread")

function DummyThread:init()
  self.name = newname("Dummy-%d")
  self.daemon = true
  self.ident = get_ident()
  self.native_id = get_native_id()
  self._started, self._stopped = true, false
  self._initialized = true
  self._seq = next_seq()
  self._dummy = true
  _registry_lock:acquire()
  _active[self.ident] = self
  _registry_lock:release()
end

function DummyThread:is_alive()
  return not self._stopped
end

function DummyThread:_join()
  error(RuntimeError("cannot join a dummy thread"), 3)
end

local _main = MainThread()
_active[_main.ident] = _main

current_thread = function()
  local t = _active[get_ident()]
  if t then return t end
  return DummyThread()
end
M.current_thread = current_thread

function M.main_thread()
  return _main
end

local function by_seq(a, b) return a._seq < b._seq end

function M.enumerate()
  local list = {}
  _registry_lock:acquire()
  for _, t in next, _active do list[#list + 1] = t end
  for t in next, _limbo do list[#list + 1] = t end
  _registry_lock:release()
  table.sort(list, by_seq)
  return list
end

function M.active_count()
  local n = 0
  _registry_lock:acquire()
  for _ in next, _active do n = n + 1 end
  for _ in next, _limbo do n = n + 1 end
  _registry_lock:release()
  return n
end

function M.excepthook(a)
  if SystemExit:is(a.exc_value) then return end
  local t = a.thread
  local name = t and t.name or get_ident()
  local ok, msg = pcall(tostring, a.exc_value)
  if not ok then msg = "(unprintable error)" end
  local out = { "Exception in thread ", tostring(name), ":\n" }
  if a.exc_traceback then out[#out + 1] = a.exc_traceback .. "\n" end
  out[#out + 1] = msg .. "\n"
  io.stderr:write(table.concat(out))
  io.stderr:flush()
end
M.__excepthook__ = M.excepthook

-- Functions run at exit before the non-daemon threads are joined, last
-- registered first (Python's threading._register_atexit: executors use it
-- to drain their work queues).
local _atexits, _shutting_down = {}, false

function M._register_atexit(fn, ...)
  if _shutting_down then
    error(RuntimeError("can't register atexit after shutdown"), 2)
  end
  _atexits[#_atexits + 1] = table.pack(fn, ...)
end

-- Python's exit rule, called by the interpreter when the main script ends.
function M._shutdown()
  if _main._stopped then return end
  _shutting_down = true
  for i = #_atexits, 1, -1 do
    local call = _atexits[i]
    local ok, err = pcall(call[1], table.unpack(call, 2, call.n))
    if not ok then
      io.stderr:write("Exception in threading atexit callback: ", tostring(err), "\n")
    end
  end
  _main._stopped = true
  pcall(_main_lock.release, _main_lock)
  local me = _active[get_ident()]
  while true do
    local pending = {}
    _registry_lock:acquire()
    for _, t in next, _active do
      if t ~= me and t ~= _main and not t.daemon and not t._dummy then
        pending[#pending + 1] = t
      end
    end
    for t in next, _limbo do
      if t ~= me and not t.daemon then pending[#pending + 1] = t end
    end
    _registry_lock:release()
    if #pending == 0 then break end
    -- in the order they were made: the same every run (the deterministic
    -- scheduler needs it; idents, the keys, differ from run to run)
    table.sort(pending, by_seq)
    for i = 1, #pending do pending[i]:_join(nil) end
  end
end

-- A handle for threads that a fork() left behind in the parent.
local GONE = { join = function() return true end, is_done = function() return true end,
               ident = function() end, native_id = function() end }

-- To be called in the child after fork(): the calling thread is now the only
-- (and main) thread.
function M._after_fork()
  _registry_lock = allocate_lock()
  local ident = get_ident()
  local me = _active[ident] or _main
  for _, t in next, _active do
    if t ~= me then t._stopped = true; t._handle = GONE end
  end
  for t in next, _limbo do t._stopped = true; t._handle = GONE end
  _active, _limbo = { [ident] = me }, {}
  me.ident, me.native_id = ident, get_native_id()
  if me ~= _main then _main._stopped = true end
  _main = me
  _main_lock = allocate_lock()
  _main_lock:acquire()
  for _, per in next, _locals do
    local mine = per[ident]
    for k in next, per do per[k] = nil end
    per[ident] = mine
  end
end

-- Timer ----------------------------------------------------------------------

local Timer = Thread:extend("threading.Timer")
M.Timer = Timer

local TIMER_ARGS = { "interval", "function", "args", "kwargs", fname = "Timer" }

function Timer:init(...)
  local opts = ...
  if select("#", ...) == 1 and is_options(opts) and opts.function_ ~= nil then
    -- `function` is a Lua keyword: options may spell it function_.
    local o = {}
    for k, v in next, opts do o[k] = v end
    o["function"], o.function_ = o["function"] or o.function_, nil
    return Timer.init(self, o)
  end
  local interval, fn, targs, kwargs = args.get(TIMER_ARGS, ...)
  interval = args.check(interval, "number", "Timer", "interval")
  args.check(fn, "callable", "Timer", "function")
  if targs ~= nil then args.check(targs, "table", "Timer", "args") end
  Thread.init(self)
  self.interval = interval
  self["function"] = fn
  self.args = targs or EMPTY
  self.kwargs = kwargs
  self.finished = Event()
end

function Timer:cancel()
  self.finished:set()
end

function Timer:run()
  local finished = self.finished
  finished:wait(self.interval)
  if not finished:is_set() then apply(self["function"], self.args, self.kwargs) end
  finished:set()
end

-- Barrier --------------------------------------------------------------------

-- Phases of a barrier: threads arriving, the last arrival letting them all
-- out, reset() waiting for the current ones to leave, broken.
local FILLING, DRAINING, RESETTING, BROKEN = 0, 1, -1, -2

local Barrier = Object:extend("threading.Barrier")
M.Barrier = Barrier

local BARRIER_ARGS = { "parties", "action", "timeout", fname = "Barrier" }

function Barrier:init(...)
  local parties, action, timeout = args.get(BARRIER_ARGS, ...)
  parties = args.check(parties, "integer", "Barrier", "parties")
  if parties < 1 then error(ValueError("parties must be >= 1"), 3) end
  if action ~= nil then args.check(action, "callable", "Barrier", "action") end
  check_timeout(timeout, "Barrier")
  self._cond = Condition(allocate_lock())
  self._action, self._timeout, self._parties = action, timeout, parties
  self._phase, self._count = FILLING, 0
end

Barrier:property("parties", function(self) return self._parties end)
Barrier:property("n_waiting", function(self)
  if self._phase == FILLING then return self._count end
  return 0
end)
Barrier:property("broken", function(self) return self._phase == BROKEN end)

local function barrier_break(self)
  self._phase = BROKEN
  wake(self._cond, huge)
end

-- Arrival number `index`: open the barrier if last, else wait for it.
local function barrier_arrive(self, index, timeout)
  local cond = self._cond
  if index + 1 == self._parties then
    local action = self._action
    if action ~= nil then
      local ok, err = pcall(action)
      if not ok then
        barrier_break(self)
        error(err, 0)
      end
    end
    self._phase = DRAINING
    wake(cond, huge)
    return
  end
  local deadline
  while self._phase == FILLING do
    local wait = timeout
    if timeout ~= nil then
      local now = monotonic()
      deadline = deadline or now + timeout
      wait = deadline - now
      if wait <= 0 then
        barrier_break(self)
        error(BrokenBarrierError())
      end
    end
    cond:_wait(wait)
  end
  if self._phase < 0 then error(BrokenBarrierError()) end
end

local function barrier_pass(self, timeout)
  local cond = self._cond
  while self._phase == DRAINING or self._phase == RESETTING do cond:_wait(nil) end
  if self._phase == BROKEN then error(BrokenBarrierError()) end
  local index = self._count
  self._count = index + 1
  local ok, err = pcall(barrier_arrive, self, index, timeout)
  self._count = self._count - 1
  if self._count == 0 and (self._phase == DRAINING or self._phase == RESETTING) then
    self._phase = FILLING
    wake(cond, huge)
  end
  if not ok then error(err, 0) end
  return index
end

function Barrier:wait(timeout)
  if is_options(timeout) then timeout = timeout.timeout end
  check_timeout(timeout, "Barrier.wait")
  if timeout == nil then timeout = self._timeout end
  local lock = self._cond._lock
  lock:acquire()
  local ok, r = pcall(barrier_pass, self, timeout)
  lock:release()
  if not ok then error(r, 0) end
  return r
end

function Barrier:reset()
  local lock = self._cond._lock
  lock:acquire()
  if self._count > 0 then
    if self._phase == FILLING or self._phase == BROKEN then self._phase = RESETTING end
  else
    self._phase = FILLING
  end
  wake(self._cond, huge)
  lock:release()
end

function Barrier:abort()
  local lock = self._cond._lock
  lock:acquire()
  barrier_break(self)
  lock:release()
end

-- local ----------------------------------------------------------------------

--[[
A local object keeps nothing in itself: each field access goes to the table
of the calling thread in _locals[obj]. A thread's table is made on its first
access, by calling the class's init again with the constructor's arguments
(Python's rule for subclasses of local).
]]
local Local = Object:extend("threading.local")
M["local"] = Local
M.local_ = Local

local _local_args = setmetatable({}, { __mode = "k" })

local function local_data(self)
  local per = _locals[self]
  local ident = get_ident()
  local d = per[ident]
  if d == nil then
    d = {}
    _registry_lock:acquire()
    per[ident] = d
    _registry_lock:release()
    local a = _local_args[self]
    local cls = getmetatable(self)
    if a then cls.init(self, unpack(a, 1, a.n)) else cls.init(self) end
  end
  return d
end

getmetatable(Local).__call = function(cls, ...)
  local n = select("#", ...)
  if n > 0 and cls.init == Object.init then
    error(TypeError("Initialization arguments are not supported"), 2)
  end
  local self = setmetatable({}, cls)
  _registry_lock:acquire()
  _locals[self] = { [get_ident()] = {} }
  _registry_lock:release()
  if n > 0 then _local_args[self] = table.pack(...) end
  cls.init(self, ...)
  return self
end

function Local:__index(k)
  local v = local_data(self)[k]
  if v ~= nil then return v end
  return getmetatable(self)[k]
end

function Local:__newindex(k, v)
  local_data(self)[k] = v
end

function Local:__pairs()
  return next, local_data(self), nil
end

return M
