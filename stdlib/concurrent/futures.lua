--[[
concurrent.futures: Python's module. Future, wait, as_completed and the
Executor base class are in concurrent._base; this file adds the thread
pool and InterpreterPoolExecutor (a thread pool whose workers each run in
an interpreter of their own); the process pool (multiprocessing.executor,
on the same Executor and Future) is loaded when first asked for.

    local futures = require "concurrent.futures"
    local pool <close> = futures.ThreadPoolExecutor{max_workers = 4}
    -- or InterpreterPoolExecutor: the same, each worker in an interpreter
    local f = pool:submit(fn, 1, 2)
    print(f:result())                        -- every value fn returned
    local carres = pool:map(function(x) return x * x end, {1, 2, 3})
    for f in futures.as_completed(fs, 5) do ... end
    local done, not_done = futures.wait(fs, nil, futures.FIRST_COMPLETED)

Where Lua and Python differ:
  * result() returns every value the task returned; map() keeps the first
    value of each call and returns an array (it waits for all of them; an
    error is raised when its turn comes, after the results before it, and
    the calls not started yet are cancelled). map's arrays are zipped up
    to the shortest; its options go last: pool:map(f, xs, {timeout = 2}).
  * An error in a task: result() raises the same value. An exception
    object keeps the traceback of where it was made (in the task); a
    string error is raised as the message followed by the task's
    traceback. exception() returns the value as raised (the plain message
    for a string).
  * wait() returns two sets, tables keyed by future (done[f] == true).
    wait and as_completed take an array of futures, a set, or a table
    whose keys are futures ({[pool:submit(f, i)] = i}, the course's dict).
    Options: wait(fs, {timeout =, return_when =}), as_completed(fs,
    {timeout =}). as_completed gives its iterator a closing value, so
    leaving the loop early (break, error) detaches it from the futures.
  * A cancelled future counts as done for wait() and as_completed() as
    soon as cancel() succeeds (Python reports it only once an executor has
    seen the cancellation, so waiting on futures cancelled by
    shutdown{cancel_futures = true} could hang there).
  * Exceptions: TimeoutError is the builtin TimeoutError (as in 3.11);
    CancelledError and InvalidStateError derive from
    concurrent.futures.Error; BrokenExecutor from RuntimeError;
    BrokenThreadPool (an initializer failed) from BrokenExecutor.
  * Executors are to-be-closed: `local pool <close> = ...` is Python's
    `with`, shutdown with wait at the end of the scope. shutdown(wait,
    cancel_futures) or shutdown{wait =, cancel_futures =}.
  * Program exit waits for the pools' queued work, as Python 3.9+ does:
    the module registers with threading._register_atexit, as Python's does.
    An executor that is garbage-collected without shutdown lets its idle
    workers end.
  * A callback that raises is reported on stderr ("exception calling
    callback for <Future ...>") and the others still run.
]]

local threading = require "threading"
local base = require "concurrent._base"
local _queue = require "_queue"
local _thread = require "_thread"
local exc = require "gilua.exceptions"
local args = require "gilua.args"
local errors = require "gilua.errors"

local Thread = threading.Thread
local allocate_lock = _thread.allocate_lock
local TypeError, ValueError, RuntimeError = exc.TypeError, exc.ValueError, exc.RuntimeError
local error, tostring, pcall, xpcall, next, rawget, getmetatable, setmetatable =
  error, tostring, pcall, xpcall, next, rawget, getmetatable, setmetatable
local pack, unpack = table.pack, table.unpack

-- The module: what concurrent._base defines, the thread pool, and the
-- process pool when first asked for.
local M = {}
for k, v in next, base do
  if type(k) == "string" and k:sub(1, 1) ~= "_" then M[k] = v end
end

local Future, Executor, BrokenThreadPool = base.Future, base.Executor, base.BrokenThreadPool
local traced = base._traced
local callable = args.callable
local unbox, report = errors.unbox, errors.report

-- ThreadPoolExecutor -------------------------------------------------------------

--[[
Program exit: Python's threading atexit hook, _python_exit. Every worker is
listed with its work queue; at exit each queue gets an end marker (nil)
after the work already queued, and the workers are joined.
]]
local threads_queues = setmetatable({}, { __mode = "k" })
local tq_lock = allocate_lock()
local exiting = false

local function at_exit()
  exiting = true
  local ts, n = {}, 0
  tq_lock:acquire()
  for t in next, threads_queues do
    n = n + 1
    ts[n] = t
  end
  -- in the order the workers were made, the same every run (the keys'
  -- addresses are not): the deterministic scheduler needs it
  table.sort(ts, function(a, b) return a._seq < b._seq end)
  local qs = {}
  for i = 1, n do qs[i] = threads_queues[ts[i]] end
  tq_lock:release()
  for i = 1, n do qs[i]:put(nil) end
  for i = 1, n do ts[i]:join() end
end

threading._register_atexit(at_exit)

-- Ends a task: the future gets the values or the error of xpcall.
local function finish(f, ok, ...)
  if ok then return f:set_result(...) end
  local e, tb = unbox((...))
  return f:set_exception(e, tb)
end

local function direct(fn, ...) return fn(...) end

--[[ The loop of a worker thread. It holds its executor only through the
weak table `ref`, so that an executor dropped without shutdown can be
collected (its __gc then sends the workers an end marker). A work item is
the table.pack of the arguments, with the future in `f` and the function in
`fn`; nil is the end marker, passed on to the next worker. `context`, if
any, is called first and gives how to run a function (instead of calling it
here) and what to do once the worker ends: InterpreterPoolExecutor runs
each worker's tasks in an interpreter of its own. ]]
local function worker(ref, q, initializer, initargs, context)
  local run, done = direct, nil
  if context ~= nil then
    local ok, box = xpcall(function() run, done = context() end, traced)
    if not ok then
      report("Exception in initializer:", unbox(box))
      local ex = ref[1]
      if ex ~= nil then ex:_initializer_failed() end
      return
    end
  end
  if initializer ~= nil then
    local ok, box = xpcall(run, traced, initializer, unpack(initargs, 1, initargs.n or #initargs))
    if not ok then
      report("Exception in initializer:", unbox(box))
      local ex = ref[1]
      if ex ~= nil then ex:_initializer_failed() end
      if done then done() end
      return
    end
  end
  while true do
    local w = q:get()
    if w ~= nil then
      local f = w.f
      if f:set_running_or_notify_cancel() then
        finish(f, xpcall(run, traced, w.fn, unpack(w, 1, w.n)))
      end
      w, f = nil, nil
    else
      local ex = ref[1]
      if exiting or ex == nil or ex._shutdown then
        if ex ~= nil then ex._shutdown = true end
        q:put(nil)
        if done then done() end
        return
      end
      ex = nil
    end
  end
end

local ThreadPoolExecutor = Executor:extend("concurrent.futures.ThreadPoolExecutor")
M.ThreadPoolExecutor = ThreadPoolExecutor

local POOL_ARGS = { "max_workers", "thread_name_prefix", "initializer", "initargs",
                    fname = "ThreadPoolExecutor" }
ThreadPoolExecutor._broken_class = BrokenThreadPool
ThreadPoolExecutor._broken_message =
  "A thread initializer failed, the thread pool is not usable anymore"
local EMPTY = { n = 0 }
local WEAK_VALUES = { __mode = "v" }
local pool_counter = 0

function ThreadPoolExecutor:init(...)
  local max_workers, prefix, initializer, initargs = args.get(POOL_ARGS, ...)
  if max_workers == nil then
    max_workers = math.min(32, (os.cpu_count() or 1) + 4)
  else
    max_workers = args.check(max_workers, "integer", "ThreadPoolExecutor", "max_workers")
    if max_workers <= 0 then
      error(ValueError("max_workers must be greater than 0"), 3)
    end
  end
  if initializer ~= nil and not callable(initializer) then
    error(TypeError("initializer must be a callable"), 3)
  end
  if initargs ~= nil then args.check(initargs, "table", "ThreadPoolExecutor", "initargs") end
  if prefix == nil or prefix == "" then
    prefix = ("ThreadPoolExecutor-%d"):format(pool_counter)
    pool_counter = pool_counter + 1
  end
  self._max_workers = max_workers
  self._thread_name_prefix = tostring(prefix)
  self._initializer, self._initargs = initializer, initargs or EMPTY
  self._work_queue = _queue.new("simple")
  self._threads, self._nthreads = {}, 0
  self._broken, self._shutdown = false, false
  self._shutdown_lock = allocate_lock()
  self._ref = setmetatable({ self }, WEAK_VALUES)
end

function ThreadPoolExecutor:_start_thread()
  local n = self._nthreads
  local q = self._work_queue
  local t = Thread{
    name = ("%s_%d"):format(self._thread_name_prefix, n),
    target = worker,
    args = pack(self._ref, q, self._initializer, self._initargs, self._context),
  }
  t:start()
  self._threads[n + 1] = t
  self._nthreads = n + 1
  tq_lock:acquire()
  threads_queues[t] = q
  tq_lock:release()
end

local function refuse(self)
  if self._broken then return self._broken_class(self._broken) end
  if self._shutdown then
    return RuntimeError("cannot schedule new futures after shutdown")
  end
  if exiting then
    return RuntimeError("cannot schedule new futures after interpreter shutdown")
  end
end

function ThreadPoolExecutor:submit(fn, ...)
  if not callable(fn) then
    args.check(fn, "callable", "ThreadPoolExecutor.submit", "fn")
  end
  local lock = self._shutdown_lock
  lock:acquire()
  local no = refuse(self)
  if no then
    lock:release()
    error(no, 2)
  end
  local f = Future()
  local w = pack(...)
  w.f, w.fn = f, fn
  local q = self._work_queue
  q:put(w)
  -- A new worker unless one is already waiting for this item (Python
  -- counts idle workers with a semaphore; the queue counts its getters).
  local ok, err = true, nil
  if q:_idle() < 0 and self._nthreads < self._max_workers then
    ok, err = pcall(self._start_thread, self)
  end
  lock:release()
  if not ok then error(err, 0) end
  return f
end

-- An initializer failed: the pool is broken, its queued work fails.
function ThreadPoolExecutor:_initializer_failed()
  local lock = self._shutdown_lock
  lock:acquire()
  self._broken = self._broken_message
  local q, ends = self._work_queue, 0
  while true do
    local ok, w = q:_poll()
    if not ok then break end
    if w == nil then
      ends = ends + 1
    elseif not w.f:done() then
      pcall(w.f.set_exception, w.f, self._broken_class(self._broken))
    end
  end
  for _ = 1, ends do q:put(nil) end
  lock:release()
end

local SHUTDOWN_ARGS = { "wait", "cancel_futures", fname = "Executor.shutdown" }

function ThreadPoolExecutor:shutdown(...)
  local wait, cancel_futures = args.get(SHUTDOWN_ARGS, ...)
  local lock = self._shutdown_lock
  lock:acquire()
  self._shutdown = true
  local q = self._work_queue
  if cancel_futures then
    while true do
      local ok, w = q:_poll()
      if not ok then break end
      if w ~= nil then w.f:cancel() end
    end
  end
  q:put(nil)
  lock:release()
  if args.bool(wait, true) then
    local ts = self._threads
    for i = 1, self._nthreads do ts[i]:join() end
  end
end

-- Dropped without shutdown: wake the idle workers so that they see it.
function ThreadPoolExecutor:__gc()
  local q = rawget(self, "_work_queue")
  if q ~= nil then pcall(q.put, q, nil) end
end

function ThreadPoolExecutor:__tostring()
  return ("<%s max_workers=%d threads=%d%s>"):format(
    tostring(rawget(getmetatable(self), "__name")), self._max_workers,
    self._nthreads, self._shutdown and " shutdown" or "")
end

-- InterpreterPoolExecutor ------------------------------------------------------------

--[[
A ThreadPoolExecutor whose workers each run their tasks in an interpreter
of their own (Python 3.14), made when the worker starts and closed when it
ends: CPU-bound tasks run in parallel, in the threads of one process. The
function and its arguments are copied there, its results copied back
(concurrent.interpreters' rules: a function of the main script, a closure
and an anonymous function all cross, with their upvalues). The initializer
runs in each worker's interpreter. A task that raises fails its future
with concurrent.interpreters.ExecutionFailed (excinfo: the error's type,
message and traceback there).
]]
local InterpreterPoolExecutor =
  ThreadPoolExecutor:extend("concurrent.futures.InterpreterPoolExecutor")
M.InterpreterPoolExecutor = InterpreterPoolExecutor
M.BrokenInterpreterPool =
  BrokenThreadPool:extend("concurrent.futures.interpreter.BrokenInterpreterPool")
InterpreterPoolExecutor._broken_class = M.BrokenInterpreterPool
InterpreterPoolExecutor._broken_message =
  "A worker initializer failed, the interpreter pool is not usable anymore"

local interp_counter = 0

-- In the worker's thread: its interpreter, how to run there, and the end.
local function in_interpreter()
  local interp = require("concurrent.interpreters").create()
  local function run(fn, ...) return interp:call(fn, ...) end
  local function done() interp:close() end
  return run, done
end

function InterpreterPoolExecutor:init(...)
  local max_workers, prefix, initializer, initargs = args.get(POOL_ARGS, ...)
  if prefix == nil or prefix == "" then
    prefix = ("InterpreterPoolExecutor-%d"):format(interp_counter)
    interp_counter = interp_counter + 1
  end
  ThreadPoolExecutor.init(self, max_workers, prefix, initializer, initargs)
  self._context = in_interpreter
end

-- The process half lives with multiprocessing, loaded on first use.
local PROCESS_NAMES = { ProcessPoolExecutor = true, BrokenProcessPool = true }
setmetatable(M, { __index = function(t, k)
  if PROCESS_NAMES[k] or k == "process" then
    local process = require "multiprocessing.executor"
    rawset(t, "process", process)
    rawset(t, "ProcessPoolExecutor", process.ProcessPoolExecutor)
    rawset(t, "BrokenProcessPool", process.BrokenProcessPool)
    return rawget(t, k)
  end
end })

return M
