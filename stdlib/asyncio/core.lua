--[[
asyncio.core: the event loop, futures, tasks, coroutine objects, sleep
and create_task of Python's asyncio. asyncio.combinators (gather, wait,
wait_for, shield, as_completed, timeout) and asyncio.runners (run,
Runner, the bridges to other threads) build on it; `require "asyncio"`
gathers them with asyncio.locks, asyncio.queues, asyncio.taskgroups,
asyncio.streams and asyncio.subprocess; docs/asyncio.md is the user's
guide.

This file stays whole (about 1,500 lines): a task's life (its step, the
resume, the future it awaits, the callbacks that queue it again, the
loop's ready queue and timers) is one hot path through local functions
and upvalues of this chunk; split across modules, each of those calls
would become a table lookup.

How it works:
  * `async(fn)` returns a coroutine function; calling it makes a
    Coroutine object (the function and its arguments), which runs only
    when awaited or wrapped in a Task. Lua coroutines are stackful, so
    awaiting a coroutine object inside a task simply calls its function
    in place, on the task's own Lua coroutine: only tasks own one.
  * A Task drives its Lua coroutine with coroutine.resume (gilua's, which
    the GIL's preemption follows). Awaiting a pending future yields it to
    the task's step, which registers the task itself (not a closure) in
    the future's callbacks; the future's completion queues the step
    again. A bare yield (sleep(0)) queues the step at once. Cancellation
    is delivered as the value the yield returns (a CancelledError to
    raise) or through the awaited future's own cancellation.
  * A task that fails or is cancelled unwinds its coroutine in a
    protected call at its base: its <close> variables run with the
    error, and may await (see task_body).
  * The ready queue is three parallel arrays (function, two arguments),
    double-buffered: one iteration runs what was queued before it
    started. Timers are a binary heap of handles (when, insertion order).
    Cancelled timers stay in the heap until they reach its top.
  * I/O readiness and the wake-ups of other threads come from the poller
    of `_asyncio` (epoll), which waits with the GIL released.
]]

local Object = require "gilua.class"
local exc = require "gilua.exceptions"
local args = require "gilua.args"
local errors = require "gilua.errors"
local aio = require "_asyncio"
local _thread = require "_thread"
local time = require "time"

local BaseException, Exception, RuntimeError, ValueError, TypeError =
  exc.BaseException, exc.Exception, exc.RuntimeError, exc.ValueError, exc.TypeError
local type, select, error, tostring, pcall, xpcall, next, rawget, rawset,
      getmetatable, setmetatable =
  type, select, error, tostring, pcall, xpcall, next, rawget, rawset,
  getmetatable, setmetatable
local pack, unpack, traceback, getinfo = table.pack, table.unpack,
  debug.traceback, debug.getinfo
local cocreate, yield, coclose, running = coroutine.create, coroutine.yield,
  coroutine.close, coroutine.running
local monotonic = time.monotonic
local get_ident = _thread.get_ident
local is_options = args.is_options

local M = {}

-- Exceptions ------------------------------------------------------------------

-- As in Python 3.8+: CancelledError is a BaseException, so that
-- `Exception:is(e)` handlers do not swallow a cancellation.
local CancelledError = BaseException:extend("asyncio.CancelledError")
local InvalidStateError = Exception:extend("asyncio.InvalidStateError")
local TimeoutError = exc.TimeoutError       -- the builtin, as in 3.11
M.CancelledError, M.InvalidStateError, M.TimeoutError =
  CancelledError, InvalidStateError, TimeoutError
M.IncompleteReadError = exc.EOFError:extend("asyncio.IncompleteReadError")
M.LimitOverrunError = Exception:extend("asyncio.LimitOverrunError")
M.SendfileNotAvailableError = RuntimeError:extend("asyncio.SendfileNotAvailableError")

function M.IncompleteReadError:init(partial, expected)
  local msg = ("%d bytes read on a total of %s expected bytes"):format(
    #partial, expected == nil and "undefined" or tostring(expected))
  exc.EOFError.init(self, msg)
  self.partial, self.expected = partial, expected
end

function M.LimitOverrunError:init(message, consumed)
  Exception.init(self, message)
  self.consumed = consumed
end

-- Errors raised in tasks and callbacks: a string error keeps the
-- traceback of where it happened (exception objects have their own).
local function handler(e)
  if type(e) == "table" and getmetatable(e) and BaseException:is(e) then
    return e
  end
  return errors.box(e, traceback(nil, 2))
end

local unbox, report, typename = errors.unbox, errors.report, args.typename

-- Running loops and tasks --------------------------------------------------------

local running_loops = {}        -- OS thread ident -> its running loop
local event_loops = {}          -- OS thread ident -> loop set by set_event_loop
local resume_task, intask = aio.resume, aio.intask

--[[ The task whose own coroutine is running, or nil. The loop keeps the
task it steps in _current_task; aio.intask() tells whether the running
coroutine is that task's (and not a coroutine nested inside it). ]]
local function task_here()
  if intask() then return running_loops[get_ident()]._current_task end
end

local function current_task_or_fail(what)
  local task = task_here()
  if not task then
    error(RuntimeError((what or "await") ..
      " outside of a task (run the code with asyncio.run or create_task)"), 3)
  end
  return task
end

function M._get_running_loop()
  return running_loops[get_ident()]
end

function M.get_running_loop()
  local loop = running_loops[get_ident()]
  if loop == nil then error(RuntimeError("no running event loop"), 2) end
  return loop
end

-- Yields of awaiting code carry this tag first, so that a step tells a
-- yield (AWAIT, future or nil) from the values the task's function
-- returned.
local AWAIT = setmetatable({}, { __name = "asyncio.AWAIT" })

-- Coroutine objects -------------------------------------------------------------

local Coroutine = Object:extend("asyncio.Coroutine")
M.Coroutine = Coroutine
Coroutine._is_coro = true
Coroutine._started = false

local function coro_name(fn)
  local info = getinfo(fn, "S")
  return info.short_src .. ":" .. info.linedefined
end

-- A coroutine object that is collected without having run tells so, as
-- Python does.
local function never_awaited(self)
  if not self._started then
    local ok = pcall(io.stderr.write, io.stderr,
      "RuntimeWarning: coroutine '", tostring(self._name),
      "' was never awaited\n")
    if ok then pcall(io.stderr.flush, io.stderr) end
  end
end

--[[
Each coroutine function has two small classes under Coroutine holding
its function and name: one with the finalizer above for coroutine
objects not started yet, one without for those started (the finalizer's
call is skipped by switching the metatable when the coroutine starts).
So a coroutine object itself holds only its arguments.
]]
local function coro_classes(fn, name)
  local started = Coroutine:extend()
  started._fn, started._name = fn, name
  started._started = true
  rawset(started, "__gc", nil)
  local fresh = started:extend()
  fresh._started = false
  rawset(fresh, "__gc", never_awaited)
  fresh._started_cls = started
  started._started_cls = started
  return fresh
end

--[[ async(fn[, name]): a coroutine function. The name is what messages
show (default: where fn was defined). ]]
function M.async(fn, name)
  args.check(fn, "callable", "asyncio.async", "fn")
  if name == nil then
    name = type(fn) == "function" and coro_name(fn) or tostring(fn)
  end
  local cls = coro_classes(fn, tostring(name))
  -- A Lua function with a fixed number of parameters sees only those: its
  -- coroutine objects can keep just as many arguments, with no vararg
  -- call to make one.
  local info = type(fn) == "function" and getinfo(fn, "u")
  if info and not info.isvararg then
    if info.nparams == 1 then
      return function(a) return setmetatable({ _n = 1, _a = a }, cls) end
    elseif info.nparams == 0 then
      return function() return setmetatable({ _n = 0 }, cls) end
    end
  end
  return function(...)
    local n = select("#", ...)
    if n == 1 then return setmetatable({ _n = 1, _a = ... }, cls) end
    if n == 0 then return setmetatable({ _n = 0 }, cls) end
    return setmetatable({ _n = n, _args = pack(...) }, cls)
  end
end
M.coroutine = M.async

local function iscoro(x)
  return type(x) == "table" and x._is_coro == true
end
M.iscoroutine = iscoro

local function mark_started(c)
  setmetatable(c, c._started_cls)
end

-- Runs the coroutine's function in the calling coroutine.
local function coro_run(c)
  if c._started then
    error(RuntimeError("cannot reuse already awaited coroutine '" ..
                       tostring(c._name) .. "'"), 3)
  end
  mark_started(c)
  local n = c._n
  if n == 0 then return c._fn() end
  if n == 1 then return c._fn(c._a) end
  return c._fn(unpack(c._args, 1, n))
end

function Coroutine:await()
  return coro_run(self)
end

-- Python's coro.close(): a coroutine that will never run (no warning).
function Coroutine:close()
  if not self._started then mark_started(self) end
end

function Coroutine:__tostring()
  return ("<coroutine object %s at %p>"):format(tostring(self._name), self)
end

function M.await(x, ...)
  if x == nil or type(x) ~= "table" or x.await == nil then
    error(TypeError("object " .. typename(x) .. " can't be used in 'await' expression"), 2)
  end
  return x:await(...)
end

-- Handles -------------------------------------------------------------------------

local Handle = Object:extend("asyncio.Handle")
M.Handle = Handle
local TimerHandle = Handle:extend("asyncio.TimerHandle")
M.TimerHandle = TimerHandle

local function new_handle(cls, loop, cb, ...)
  local n = select("#", ...)
  local h
  if n <= 2 then
    local a, b = ...
    h = { _loop = loop, _cb = cb, _n = n, _a = a, _b = b,
          _cancelled = false, _when = false }
  else
    h = { _loop = loop, _cb = cb, _n = n, _args = pack(...),
          _cancelled = false, _when = false }
  end
  return setmetatable(h, cls)
end

local function run_handle(h)
  if h._cancelled then return end
  local n = h._n
  if n == 0 then return h._cb() end
  if n == 1 then return h._cb(h._a) end
  if n == 2 then return h._cb(h._a, h._b) end
  return h._cb(unpack(h._args, 1, n))
end

function Handle:cancel()
  if not self._cancelled then
    self._cancelled = true
    if self._when then
      local loop = self._loop
      loop._ncancelled = loop._ncancelled + 1
    end
    self._cb, self._a, self._b, self._args = nil, nil, nil, nil
  end
end

function Handle:cancelled() return self._cancelled == true end
function Handle:get_context() return nil end

function Handle:__tostring()
  local cls = self._when and "TimerHandle" or "Handle"
  local s = ("<%s %s"):format(cls, self._cancelled and "cancelled" or
                              tostring(self._cb))
  if self._when then s = s .. (" when=%.3f"):format(self._when) end
  return s .. ">"
end

function TimerHandle:when() return self._when end

-- Timer heap: ordered by _when, then _seq.
local function before(a, b)
  local wa, wb = a._when, b._when
  if wa ~= wb then return wa < wb end
  return a._seq < b._seq
end

local function heap_push(heap, h)
  local i = #heap + 1
  heap[i] = h
  while i > 1 do
    local p = i // 2
    local hp = heap[p]
    if not before(h, hp) then break end
    heap[i] = hp
    i = p
  end
  heap[i] = h
end

local function heap_pop(heap)
  local n = #heap
  local top = heap[1]
  local last = heap[n]
  heap[n] = nil
  n = n - 1
  if n > 0 then
    local i = 1
    while true do
      local c = 2 * i
      if c > n then break end
      local hc = heap[c]
      if c < n then
        local hd = heap[c + 1]
        if before(hd, hc) then c = c + 1; hc = hd end
      end
      if not before(hc, last) then break end
      heap[i] = hc
      i = c
    end
    heap[i] = last
  end
  return top
end

-- Futures ---------------------------------------------------------------------------

local PENDING, CANCELLED, FINISHED = "PENDING", "CANCELLED", "FINISHED"

local Future = Object:extend("asyncio.Future")
M.Future = Future
local Task                       -- below

-- The hot paths inline this for a task's step: qf[n], qa[n] = step, task.
local function push(loop, f, a, b)
  local n = loop._qn + 1
  loop._qn = n
  loop._qf[n] = f
  loop._qa[n] = a
  loop._qb[n] = b
end

local step                       -- Task's step, below

--[[ A future's callbacks: the first in _cb1, the others in the array
_cbs (most futures have one, and it costs no table then). A task waiting
for the future is stored as itself: its step is queued. ]]
local function add_callback(fut, cb)
  if not fut._cb1 then fut._cb1 = cb
  else
    local cbs = fut._cbs
    if not cbs then fut._cbs = { cb } else cbs[#cbs + 1] = cb end
  end
end

--[[ A callback in IMMEDIATE is internal bookkeeping (gather's): it runs
at once instead of in a later iteration; it only sets other futures'
states, whose own callbacks are scheduled as usual. (A table lookup
tells, cheaper than asking type() first.) ]]
local IMMEDIATE = setmetatable({}, { __mode = "k" })

local function schedule_one(loop, fut, cb)
  if IMMEDIATE[cb] then return cb(fut) end
  if type(cb) == "table" and cb._is_task_waiter then
    local n = loop._qn + 1
    loop._qn = n
    loop._qf[n], loop._qa[n] = step, cb
    return
  end
  push(loop, cb, fut, nil)
end

-- After the future's state became final.
local function schedule_callbacks(fut)
  local cb1 = fut._cb1
  if not cb1 then return end
  fut._cb1 = false
  local loop = fut._loop
  if IMMEDIATE[cb1] then cb1(fut) else schedule_one(loop, fut, cb1) end
  local cbs = fut._cbs
  if cbs then
    fut._cbs = false
    for i = 1, #cbs do schedule_one(loop, fut, cbs[i]) end
  end
end

--[[ The fields that the fast paths read have defaults in the class
itself (false for "none"; _n, the number of result values, is 1), one
lookup away; instances start with the fewest fields, to stay small (a
task is a table of 8 slots). _result has no default: a result may be
nil. ]]
Future._cb1, Future._cbs, Future._failed, Future._n =
  false, false, false, 1
Future._log = false
Future._must_cancel, Future._fut_waiter, Future._co, Future._slot =
  false, false, false, false
local function new_future(loop)
  return setmetatable({ _loop = loop, _state = PENDING }, Future)
end

function Future:init(opts)
  local loop = opts and opts.loop
  self._loop = loop or M.get_event_loop()
  self._state = PENDING
  self._cb1, self._cbs, self._failed = false, false, false
end

function Future:get_loop() return self._loop end
function Future:done() return self._state ~= PENDING end
function Future:cancelled() return self._state == CANCELLED end

function Future:cancel(msg)
  if self._state ~= PENDING then return false end
  self._state = CANCELLED
  self._cancel_message = msg
  schedule_callbacks(self)
  return true
end

local function set_result(self, ...)
  local n = select("#", ...)
  -- _n is 1 unless set: most results are one value
  if n == 1 then self._result = ...
  else self._n, self._results = n, pack(...) end
  self._state = FINISHED
  schedule_callbacks(self)
end

function Future:set_result(...)
  if self._state ~= PENDING then
    error(InvalidStateError(self._state .. ": " .. tostring(self)), 2)
  end
  set_result(self, ...)
end

--[[ A future that fails gets a small companion with a finalizer: if
nobody has asked for the error (result, exception, await) by the time the
future is collected, the error is reported on stderr, as Python logs
"Task exception was never retrieved". ]]
local NOT_RETRIEVED = {}
NOT_RETRIEVED.__gc = function(log)
  if log.done then return end
  local what = log.task and "Task exception was never retrieved" or
               "Future exception was never retrieved"
  pcall(report, what .. "\nfuture: " .. log.desc, log.e, log.tb)
end

local function retrieved(fut)
  local log = fut._log
  if log then
    log.done = true
    fut._log = false
  end
end

local function set_exception(self, e, tb)
  if e == nil then e = "nil" end
  self._exception = e
  self._tb = tb
  self._failed = true
  self._state = FINISHED
  if not (type(e) == "table" and CancelledError:is(e)) then
    local ok, desc = pcall(tostring, self)
    self._log = setmetatable({ e = e, tb = tb, desc = ok and desc or "?",
                               task = self._is_task_waiter or false }, NOT_RETRIEVED)
  end
  schedule_callbacks(self)
end

function Future:set_exception(e)
  if self._state ~= PENDING then
    error(InvalidStateError(self._state .. ": " .. tostring(self)), 2)
  end
  if type(e) == "table" and rawget(e, "__super") ~= nil
     and BaseException.is_subclass(e, BaseException) then
    e = e()                          -- a class: Python instantiates it
  end
  if exc.StopIteration:is(e) then
    error(TypeError("StopIteration interacts badly with generators " ..
                    "and cannot be raised into a Future"), 2)
  end
  set_exception(self, e)
end

local function make_cancelled_error(self)
  local e = self._cancelled_exc
  if e then return e end
  e = CancelledError(self._cancel_message)
  self._cancelled_exc = e
  return e
end

local function raise_outcome(self)
  local e, tb = self._exception, self._tb
  retrieved(self)
  if type(e) == "string" and tb ~= nil then error(e .. "\n" .. tb, 0) end
  error(e, 0)
end

local function outcome(self)
  if self._failed then return raise_outcome(self) end
  local n = self._n
  if n == 1 then return self._result end
  if n == 0 then return end
  return unpack(self._results, 1, n)
end

function Future:result()
  local state = self._state
  if state == FINISHED then return outcome(self) end
  if state == CANCELLED then error(make_cancelled_error(self), 0) end
  error(InvalidStateError("Result is not set."), 2)
end

function Future:exception()
  local state = self._state
  if state == FINISHED then
    retrieved(self)
    if self._failed then return self._exception end
    return nil
  end
  if state == CANCELLED then error(make_cancelled_error(self), 0) end
  error(InvalidStateError("Exception is not set."), 2)
end

function Future:add_done_callback(fn)
  args.check(fn, "callable", "Future.add_done_callback", "fn")
  if self._state ~= PENDING then
    push(self._loop, fn, self, nil)
    return
  end
  add_callback(self, fn)
end

function Future:remove_done_callback(fn)
  local all = {}
  if self._cb1 then all[1] = self._cb1 end
  local cbs = self._cbs
  if cbs then for i = 1, #cbs do all[#all + 1] = cbs[i] end end
  self._cb1, self._cbs = false, false
  local removed = 0
  for i = 1, #all do
    if all[i] == fn then removed = removed + 1 else add_callback(self, all[i]) end
  end
  return removed
end

--[[ Awaiting a future from a task: yield it to the step, which wakes the
task once the future is done; the yield returns a CancelledError when
the task was cancelled while the future could not be. ]]
local function await_future(fut)
  if fut._state == PENDING then
    if not intask() then current_task_or_fail() end
    local e = yield(AWAIT, fut)
    if e ~= nil then error(e, 0) end
    if fut._state == PENDING then
      error(RuntimeError("await wasn't used with future"), 0)
    end
  end
  if fut._state == FINISHED then return outcome(fut) end
  error(make_cancelled_error(fut), 0)
end
M._await_future = await_future

function Future:await()
  return await_future(self)
end

function Future:__tostring()
  local state = self._state
  local s = ("<%s %s"):format(typename(self), state:lower())
  if state == FINISHED then
    if self._failed then s = s .. " exception=" .. tostring(self._exception)
    elseif self._n == 1 then s = s .. " result=" .. tostring(self._result) end
  end
  return s .. ">"
end

function M.isfuture(x)
  return type(x) == "table" and Future:is(x)
end

-- Tasks ------------------------------------------------------------------------------

Task = Future:extend("asyncio.Task")
M.Task = Task
Task._is_task_waiter = true
Task._num_cancels_requested = 0
-- Future's field defaults, copied: a task's lookup of an unset field then
-- stops at its own class instead of walking up to Future.
for _, k in ipairs{ "_cb1", "_cbs", "_failed", "_n", "_log",
                    "_must_cancel", "_fut_waiter", "_co", "_slot" } do
  Task[k] = Future[k]
end

local task_counter = 0

local function finish_cancelled(task, e)
  task._state = CANCELLED
  task._cancel_message = e and e.message
  task._cancelled_exc = e or false
  return schedule_callbacks(task)
end

--[[ Each loop keeps its pending tasks for all_tasks() in the array
_tasks (_ntasks of them; new_task adds them); a task knows its index
(_slot), so leaving is a swap with the last one. ]]
local function unregister(task)
  local i = task._slot
  if not i then return end
  task._slot = false
  local loop = task._loop
  local tasks, n = loop._tasks, loop._ntasks
  local last = tasks[n]
  tasks[n] = nil
  loop._ntasks = n - 1
  if last ~= task then
    tasks[i] = last
    last._slot = i
  end
end

-- The task's function returned n values: v is the value when n == 1, a
-- table.pack of them when n > 1 (what aio.resume gives).
local function task_returned(task, n, v)
  unregister(task)
  task._co = false
  if task._must_cancel then
    task._must_cancel = false
    return finish_cancelled(task, nil)
  end
  if n == 1 then task._result = v
  elseif n == 0 then task._n = 0
  else task._n, task._results = n, v end
  task._state = FINISHED
  return schedule_callbacks(task)
end

--[[
A task unwinds its coroutine when it fails or is cancelled. Lua closes
the pending <close> variables of a coroutine that an error stops only
when the coroutine is closed, and closing methods run by coroutine.close
cannot yield. So a task's coroutine runs task_body (_asyncio.body): the
coroutine object's function in a protected call, which Lua makes
yieldable inside a coroutine. An error that reaches it, a cancellation
included, unwinds the task's stack there, in the task: every pending
<close> variable runs, last first, with the error (a CancelledError when
the task was cancelled, raised where it awaited), and may await (a
TaskGroup waits for its tasks). An error raised by a closing method
replaces the one in flight (timeout() turns its CancelledError into
TimeoutError). The error is then raised again, out of the coroutine, to
the step.

The message handler returns the error untouched (closing methods see
that value) and keeps the traceback of a string error aside, by
coroutine: a closing method may await, and other tasks fail meanwhile.
]]
local tracebacks = setmetatable({}, { __mode = "k" })   -- coroutine -> {e, tb}

local function task_handler(e)
  if not (type(e) == "table" and BaseException:is(e)) then
    tracebacks[running()] = { e, traceback(nil, 2) }
  end
  return e
end

local task_body = aio.body

-- The task's function raised e.
local function task_failed(task, e)
  local co = task._co
  unregister(task)
  task._co = false
  if type(e) == "table" and CancelledError:is(e) then
    return finish_cancelled(task, e)
  end
  local tb
  if co then
    local kept = tracebacks[co]
    if kept then
      tracebacks[co] = nil
      if rawequal(kept[1], e) then tb = kept[2] end
    end
  end
  set_exception(task, e, tb)
  if type(e) == "table" and not Exception:is(e) and BaseException:is(e) then
    -- KeyboardInterrupt, SystemExit: the loop stops with it, as Python's
    -- does; result() still has it.
    retrieved(task)
    task._loop._fatal = e
  end
end

local function bad_yield(y)
  return RuntimeError("Task got bad yield: " .. tostring(y))
end

local await_on

--[[
One step of a task: resume its coroutine (made at the first step, with
the task's function as its body), then look at what it yielded. Nothing
here allocates but the first step's coroutine.
]]
step = function(task, e)
  if task._state ~= PENDING then return end
  if task._must_cancel then
    task._must_cancel = false
    if e == nil or not CancelledError:is(e) then
      e = CancelledError(task._cancel_message)
    end
  end
  if task._fut_waiter then task._fut_waiter = false end
  local loop = task._loop
  local co = task._co
  local yielded, tag, y
  if co then
    loop._current_task = task
    yielded, tag, y = resume_task(co, e)
  else
    local c = task._coro
    if c._started then
      return task_failed(task, RuntimeError(
        "cannot reuse already awaited coroutine '" .. tostring(c._name) .. "'"))
    end
    mark_started(c)
    if e ~= nil then                      -- cancelled before it started
      return task_failed(task, e)
    end
    co = cocreate(task_body)
    task._co = co
    loop._current_task = task
    local n = c._n
    if n == 1 then yielded, tag, y = resume_task(co, task_handler, c._fn, c._a)
    elseif n == 0 then yielded, tag, y = resume_task(co, task_handler, c._fn)
    else
      yielded, tag, y = resume_task(co, task_handler, c._fn, unpack(c._args, 1, n))
    end
  end
  loop._current_task = false
  if yielded then
    if tag ~= AWAIT then
      -- A coroutine.yield of the user's own, straight into the task: the
      -- task fails with the error Python raises at such a yield. Nothing
      -- can be raised at a Lua yield, so the coroutine is closed where
      -- it stopped (its <close> variables run, with no error, and cannot
      -- await); an error of theirs replaces the task's.
      local ok, ce = coclose(co)
      return task_failed(task, ok and bad_yield(tag) or ce)
    end
    if task._state ~= PENDING then       -- ended from outside meanwhile
      task._co = false
      coclose(co)
      return
    end
    if y == nil then                      -- a bare yield: step again soon
      local n = loop._qn + 1
      loop._qn = n
      loop._qf[n], loop._qa[n] = step, task
      return
    end
    return await_on(task, loop, y)
  end
  if yielded == nil then return task_failed(task, tag) end
  return task_returned(task, tag, y)
end

-- The task awaits future y: its step runs again when y is done.
await_on = function(task, loop, y)
  if y._loop ~= loop then
    return push(loop, step, task, RuntimeError(
      "Task " .. tostring(task) .. " got Future " .. tostring(y) ..
      " attached to a different loop"))
  end
  if y == task then
    return push(loop, step, task, RuntimeError("Task cannot await on itself"))
  end
  if y._state ~= PENDING then
    return push(loop, step, task, nil)
  end
  if not y._cb1 then y._cb1 = task else add_callback(y, task) end
  task._fut_waiter = y
  if task._must_cancel then
    if y:cancel(task._cancel_message) then task._must_cancel = false end
  end
end

local function new_task(loop, coro, name)
  if name == nil then
    task_counter = task_counter + 1
    name = task_counter
  end
  -- five fields make room for eight: _co, _cb1 and _result come later
  local slot = loop._ntasks + 1
  local task = setmetatable({ _loop = loop, _state = PENDING, _coro = coro,
                              _name = name, _slot = slot }, Task)
  loop._ntasks = slot
  loop._tasks[slot] = task
  local n = loop._qn + 1
  loop._qn = n
  loop._qf[n], loop._qa[n] = step, task
  return task
end

function Task:init()
  error(RuntimeError("use asyncio.create_task(coro) or loop:create_task(coro)"), 3)
end

local await_it                  -- async(function(aw) return aw:await() end)

-- A coroutine object, or an awaitable such as sleep() wrapped in one.
local function check_coro(coro, fname)
  if type(coro) == "table" and coro._is_coro == true and not coro._started then
    return coro                          -- the usual case, first
  end
  if not iscoro(coro) and type(coro) == "table" and coro.await
     and not Future:is(coro) then
    return await_it(coro)
  end
  if not iscoro(coro) then
    error(TypeError(fname .. "(): a coroutine was expected, got " ..
                    typename(coro)), 3)
  end
  if coro._started then
    error(RuntimeError(fname .. "(): cannot reuse already awaited coroutine"), 3)
  end
  return coro
end

function Task:get_name()
  local n = self._name
  if math.type(n) == "integer" then return "Task-" .. n end
  return n
end

function Task:set_name(name) self._name = tostring(name) end
function Task:get_coro() return self._coro end
function Task:get_loop() return self._loop end

function Task:set_result()
  error(RuntimeError("Task does not support set_result operation"), 2)
end

function Task:set_exception()
  error(RuntimeError("Task does not support set_exception operation"), 2)
end

function Task:cancel(msg)
  if self._state ~= PENDING then return false end
  self._num_cancels_requested = self._num_cancels_requested + 1
  local w = self._fut_waiter
  if w and w:cancel(msg) then
    return true
  end
  self._must_cancel = true
  self._cancel_message = msg
  return true
end

function Task:cancelling() return self._num_cancels_requested end

function Task:uncancel()
  local n = self._num_cancels_requested
  if n > 0 then
    n = n - 1
    self._num_cancels_requested = n
  end
  return n
end

function Task:__tostring()
  local state = self._state
  local s = ("<Task %s name='%s' coro=%s"):format(
    state == CANCELLED and "cancelled" or state == FINISHED and "finished"
      or "pending",
    self:get_name(), tostring(self._coro))
  if state == FINISHED then
    if self._failed then s = s .. " exception=" .. tostring(self._exception)
    elseif self._n == 1 then s = s .. " result=" .. tostring(self._result) end
  end
  return s .. ">"
end

function M.current_task(loop)
  loop = loop or running_loops[get_ident()]
  if loop == nil then error(RuntimeError("no running event loop"), 2) end
  return loop._current_task or nil
end

-- The pending tasks of a loop, as a set.
local function pending_tasks(loop)
  local set, tasks = {}, loop._tasks
  for i = 1, loop._ntasks do set[tasks[i]] = true end
  return set
end

function M.all_tasks(loop)
  loop = loop or M.get_running_loop()
  return pending_tasks(loop)
end

-- The event loop ---------------------------------------------------------------------

local EventLoop = Object:extend("asyncio.EventLoop")
M.EventLoop = EventLoop
M.BaseEventLoop = EventLoop
M.SelectorEventLoop = EventLoop

local CLOCK_RES = 1e-9

--[[ A delay or a time of the loop's clock, as call_later, call_at,
timeout and the other waits take it: a number (a TypeError otherwise),
and not NaN (a ValueError): NaN is neither before nor after any time, so
in the timer heap it would stop every later timer, and as a poll timeout
it would wait for ever. inf is a time that never comes. Errors name the
caller `level` levels up. ]]
local function check_time(x, fname, argname, level)
  if type(x) ~= "number" then
    error(TypeError(("%s(): '%s' must be a number, not %s"):format(
      fname, argname, typename(x))), level + 1)
  end
  if x ~= x then
    error(ValueError(("%s(): invalid '%s': NaN (not a number)"):format(
      fname, argname)), level + 1)
  end
  return x
end

function EventLoop:init()
  self._poller = aio.poller()
  self._qf, self._qa, self._qb, self._qn = {}, {}, {}, 0
  self._rf, self._ra, self._rb = {}, {}, {}
  self._heap, self._ncancelled, self._seq = {}, 0, 0
  self._readers, self._writers, self._fdbits, self._nfds = {}, {}, {}, 0
  self._events = {}
  self._ts_lock = _thread.allocate_lock()
  self._ts_list = {}
  self._closed = false
  self._stopping = false
  self._fatal = false
  self._current_task = false
  self._tasks, self._ntasks = {}, 0
  self._debug = false
  self.slow_callback_duration = 0.1
end

function EventLoop:time() return monotonic() end
function EventLoop:is_running() return self._thread ~= nil end
function EventLoop:is_closed() return self._closed end
function EventLoop:get_debug() return self._debug end
function EventLoop:set_debug(on) self._debug = on and true or false end

local function check_closed(self)
  if self._closed then error(RuntimeError("Event loop is closed"), 3) end
end

function EventLoop:call_soon(cb, ...)
  check_closed(self)
  local h = new_handle(Handle, self, cb, ...)
  push(self, run_handle, h, nil)
  return h
end

local function add_timer(self, when, cb, ...)
  local h = new_handle(TimerHandle, self, cb, ...)
  local seq = self._seq + 1
  self._seq = seq
  h._when, h._seq = when, seq
  heap_push(self._heap, h)
  return h
end

function EventLoop:call_at(when, cb, ...)
  check_closed(self)
  check_time(when, "call_at", "when", 2)
  return add_timer(self, when, cb, ...)
end

function EventLoop:call_later(delay, cb, ...)
  check_closed(self)
  check_time(delay, "call_later", "delay", 2)
  return add_timer(self, monotonic() + delay, cb, ...)
end

function EventLoop:call_soon_threadsafe(cb, ...)
  check_closed(self)
  local h = new_handle(Handle, self, cb, ...)
  local lock = self._ts_lock
  lock:acquire()
  local l = self._ts_list
  l[#l + 1] = h
  lock:release()
  self._poller:wakeup()
  return h
end

function EventLoop:create_future()
  return new_future(self)
end

function EventLoop:create_task(coro, opts)
  check_closed(self)
  coro = check_coro(coro, "create_task")
  local name = opts
  if is_options(opts) then name = opts.name end
  if name ~= nil then name = tostring(name) end
  return new_task(self, coro, name)
end

-- Readers and writers: fd -> handle; the poller watches their union.
local function set_bits(self, fd, bits)
  local old = self._fdbits[fd] or 0
  if old == bits then return end
  self._poller:modify(fd, old, bits)
  if bits == 0 then
    self._fdbits[fd] = nil
    self._nfds = self._nfds - 1
  else
    if old == 0 then self._nfds = self._nfds + 1 end
    self._fdbits[fd] = bits
  end
end

-- One watcher of fd (map is self._readers or self._writers, bit 1 or 2).
local function add_watch(self, map, bit, fd, cb, ...)
  check_closed(self)
  local h = new_handle(Handle, self, cb, ...)
  local old = map[fd]
  if old then old:cancel() end
  map[fd] = h
  set_bits(self, fd, (self._fdbits[fd] or 0) | bit)
  return h
end

local function remove_watch(self, map, bit, fd)
  local h = map[fd]
  if h == nil then return false end
  map[fd] = nil
  h:cancel()
  set_bits(self, fd, (self._fdbits[fd] or 0) & ~bit)
  return true
end

function EventLoop:add_reader(fd, cb, ...)
  return add_watch(self, self._readers, 1, fd, cb, ...)
end

function EventLoop:remove_reader(fd)
  return remove_watch(self, self._readers, 1, fd)
end

function EventLoop:add_writer(fd, cb, ...)
  return add_watch(self, self._writers, 2, fd, cb, ...)
end

function EventLoop:remove_writer(fd)
  return remove_watch(self, self._writers, 2, fd)
end

function EventLoop:default_exception_handler(context)
  local msg = context.message or "Unhandled exception in event loop"
  local e = context.exception
  if e ~= nil then
    report(msg, e, context.traceback)
  else
    io.stderr:write(msg, "\n")
    io.stderr:flush()
  end
end

function EventLoop:set_exception_handler(h) self._exception_handler = h end
function EventLoop:get_exception_handler() return self._exception_handler end

function EventLoop:call_exception_handler(context)
  local h = self._exception_handler
  if h == nil then return self:default_exception_handler(context) end
  local ok, e = xpcall(h, handler, self, context)
  if not ok then
    report("Unhandled error in exception handler", unbox(e))
  end
end

-- Runs one callback, reporting its error.
local function run_callback(self, f, a, b)
  local ok, e = xpcall(f, handler, a, b)
  if not ok then
    local err, tb = unbox(e)
    if type(err) == "table" and not Exception:is(err) and BaseException:is(err)
       and not CancelledError:is(err) then
      self._fatal = err
      return
    end
    local what = f == run_handle and tostring(a) or tostring(f)
    self:call_exception_handler{ message = "Exception in callback " .. what,
                                 exception = err, traceback = tb,
                                 handle = f == run_handle and a or nil }
  end
end

local function drain_threadsafe(self)
  local lock = self._ts_lock
  lock:acquire()
  local l = self._ts_list
  self._ts_list = {}
  lock:release()
  for i = 1, #l do push(self, run_handle, l[i], nil) end
end

-- One iteration: poll (waiting if nothing is ready), move the timers
-- that are due, run what was ready when the iteration began.
function EventLoop:_run_once()
  local heap = self._heap
  -- Cancelled timers: drop them from the top; rebuild when they are many.
  if self._ncancelled > 64 and self._ncancelled * 2 > #heap then
    local keep = {}
    for i = 1, #heap do
      local h = heap[i]
      if not h._cancelled then heap_push(keep, h) end
    end
    self._heap, heap = keep, keep
    self._ncancelled = 0
  end
  while heap[1] and heap[1]._cancelled do
    heap_pop(heap)
    self._ncancelled = self._ncancelled - 1
  end
  local timeout
  if self._qn > 0 or self._stopping then
    timeout = 0
  elseif heap[1] then
    timeout = heap[1]._when - monotonic()
    if timeout < 0 then timeout = 0 end
  else
    timeout = -1
  end
  local events = self._events
  local n, woken = self._poller:poll(timeout, events)
  if n > 0 then
    local readers, writers = self._readers, self._writers
    for i = 1, 2 * n, 2 do
      local fd, bits = events[i], events[i + 1]
      if bits & 1 ~= 0 then
        local h = readers[fd]
        if h and not h._cancelled then push(self, run_handle, h, nil) end
      end
      if bits & 2 ~= 0 then
        local h = writers[fd]
        if h and not h._cancelled then push(self, run_handle, h, nil) end
      end
    end
  end
  if woken then drain_threadsafe(self) end
  if heap[1] then
    local limit = monotonic() + CLOCK_RES
    while true do
      local h = heap[1]
      if h == nil or h._when > limit then break end
      heap_pop(heap)
      if h._cancelled then
        self._ncancelled = self._ncancelled - 1
      else
        h._done = true
        push(self, run_handle, h, nil)
      end
    end
  end
  -- Run this batch; what it queues goes to the other buffer.
  local nrun = self._qn
  if nrun == 0 then return end
  local qf, qa, qb = self._qf, self._qa, self._qb
  self._qf, self._qa, self._qb, self._qn = self._rf, self._ra, self._rb, 0
  self._rf, self._ra, self._rb = qf, qa, qb
  local debug = self._debug
  for i = 1, nrun do
    local f, a, b = qf[i], qa[i], qb[i]
    qf[i], qa[i], qb[i] = nil, nil, nil
    if not debug then
      if f == step then step(a, b) else run_callback(self, f, a, b) end
    else
      -- debug mode (run(coro, {debug = true})): slow steps and callbacks
      -- are reported, as Python's debug mode does
      local t0 = monotonic()
      if f == step then step(a, b) else run_callback(self, f, a, b) end
      local dt = monotonic() - t0
      if dt >= self.slow_callback_duration then
        local what = f == step and ("step of " .. tostring(a))
                     or f == run_handle and tostring(a) or tostring(f)
        io.stderr:write(("Executing %s took %.3f seconds\n"):format(what, dt))
        io.stderr:flush()
      end
    end
    if self._fatal then
      -- leave the rest queued, in order, for a later run
      local rest = {}
      for j = i + 1, nrun do
        rest[#rest + 1] = { qf[j], qa[j], qb[j] }
        qf[j], qa[j], qb[j] = nil, nil, nil
      end
      local nf, na, nb, nn = self._qf, self._qa, self._qb, self._qn
      local f2, a2, b2 = {}, {}, {}
      for j = 1, #rest do f2[j], a2[j], b2[j] = rest[j][1], rest[j][2], rest[j][3] end
      for j = 1, nn do
        f2[#rest + j], a2[#rest + j], b2[#rest + j] = nf[j], na[j], nb[j]
      end
      self._qf, self._qa, self._qb, self._qn = f2, a2, b2, #rest + nn
      break
    end
  end
end

--[[ While a loop runs, the collector waits for the heap to grow by
LOOP_GC_PAUSE percent (instead of Lua's default 200) before a new cycle:
an event loop allocates in bursts (a task is a table, a coroutine and
its stack), and with the default pause a burst of 100,000 tasks pays
for several full traversals of the growing heap. The previous pause is
restored when the last running loop stops. ]]
local LOOP_GC_PAUSE = 1000
local gc_loops, gc_saved_pause = 0, nil
local collectgarbage = collectgarbage
local function gc_enter()
  gc_loops = gc_loops + 1
  if gc_loops == 1 then
    gc_saved_pause = collectgarbage("setpause", LOOP_GC_PAUSE)
  end
end
local function gc_leave()
  gc_loops = gc_loops - 1
  if gc_loops == 0 and gc_saved_pause then
    collectgarbage("setpause", gc_saved_pause)
    gc_saved_pause = nil
  end
end

local function loop_enter(self)
  check_closed(self)
  if self._thread ~= nil then
    error(RuntimeError("This event loop is already running"), 3)
  end
  local me = get_ident()
  if running_loops[me] ~= nil then
    error(RuntimeError("Cannot run the event loop while another loop is running"), 3)
  end
  self._thread = me
  running_loops[me] = self
  gc_enter()
end

local function loop_leave(self)
  gc_leave()
  running_loops[self._thread] = nil
  self._thread = nil
  self._stopping = false
end

function EventLoop:run_forever()
  loop_enter(self)
  local ok, e = pcall(function()
    while true do
      self:_run_once()
      local fatal = self._fatal
      if fatal then
        self._fatal = false
        error(fatal, 0)
      end
      if self._stopping then break end
    end
  end)
  loop_leave(self)
  if not ok then error(e, 0) end
end

function EventLoop:stop()
  self._stopping = true
end

local function ensure_future(aw, loop)
  if type(aw) == "table" then
    if aw._state ~= nil and Future:is(aw) then
      if loop and aw._loop ~= loop then
        error(ValueError("The future belongs to a different loop than the one specified as the loop argument"), 3)
      end
      return aw
    end
    if aw._is_coro then
      loop = loop or running_loops[get_ident()] or M.get_event_loop()
      return new_task(loop, aw)
    end
    if aw.await then                   -- sleep() and other awaitables
      loop = loop or running_loops[get_ident()] or M.get_event_loop()
      return new_task(loop, await_it(aw))
    end
    if aw.__await then
      return ensure_future(aw:__await(), loop)
    end
  end
  error(TypeError("An asyncio.Future, a coroutine or an awaitable is required, got " ..
                  typename(aw)), 3)
end

function M.ensure_future(aw, opts)
  local loop = opts
  if is_options(opts) then loop = opts.loop end
  return ensure_future(aw, loop)
end

local function stop_loop(fut)
  fut._loop:stop()
end

function EventLoop:run_until_complete(aw)
  check_closed(self)
  local fut = ensure_future(aw, self)
  fut:add_done_callback(stop_loop)
  local ok, e = pcall(self.run_forever, self)
  fut:remove_done_callback(stop_loop)
  if not ok then error(e, 0) end
  if not fut:done() then
    error(RuntimeError("Event loop stopped before Future completed."), 2)
  end
  return fut:result()
end

function EventLoop:close()
  if self._thread ~= nil then
    error(RuntimeError("Cannot close a running event loop"), 2)
  end
  if self._closed then return end
  self._closed = true
  self._qf, self._qa, self._qb, self._qn = {}, {}, {}, 0
  self._heap = {}
  self._poller:close()
  local ex = self._default_executor
  if ex then
    self._default_executor = nil
    ex:shutdown(false)
  end
end

function EventLoop:__close() self:close() end

function EventLoop:__tostring()
  return ("<EventLoop running=%s closed=%s debug=%s>"):format(
    tostring(self._thread ~= nil), tostring(self._closed), tostring(self._debug))
end

-- Event loop policy (the small part of it Python programs use) -----------------

function M.new_event_loop()
  return EventLoop()
end

function M.get_event_loop()
  local me = get_ident()
  local loop = running_loops[me] or event_loops[me]
  if loop == nil then
    loop = EventLoop()
    event_loops[me] = loop
  end
  return loop
end

function M.set_event_loop(loop)
  event_loops[get_ident()] = loop
end

-- create_task, sleep ------------------------------------------------------------------

local TASK_SPEC = { "name", "context", fname = "create_task" }

function M.create_task(coro, opt, ...)
  local name
  if opt ~= nil then
    name = args.get(TASK_SPEC, opt, ...)
    if name ~= nil then name = tostring(name) end
  end
  local loop = running_loops[get_ident()]
  if loop == nil then error(RuntimeError("no running event loop"), 2) end
  if type(coro) ~= "table" or coro._is_coro ~= true or coro._started then
    coro = check_coro(coro, "create_task")     -- the usual case skips this
  end
  return new_task(loop, coro, name)
end

-- sleep(delay[, result]) returns a small awaitable; sleep(0) yields once.
local Sleep = Object:extend("asyncio.sleep")

local SLEEP0 = setmetatable({ _delay = 0 }, Sleep)

local function wake_sleeper(fut, result)
  if fut._state == PENDING then set_result(fut, result) end
end

function Sleep:await()
  local delay = self._delay
  if delay <= 0 then
    if not intask() then current_task_or_fail() end
    local e = yield(AWAIT)
    if e ~= nil then error(e, 0) end
    if self == SLEEP0 then return end
    return self._result
  end
  local loop = current_task_or_fail()._loop
  local fut = new_future(loop)
  local h = add_timer(loop, monotonic() + delay, wake_sleeper, fut, self._result)
  local e = yield(AWAIT, fut)
  if e ~= nil or fut._state ~= FINISHED then
    h:cancel()
    if e ~= nil then error(e, 0) end
    error(make_cancelled_error(fut), 0)
  end
  return fut._result
end

function Sleep:__tostring()
  return ("<coroutine object sleep(%s)>"):format(tostring(self._delay))
end

function M.sleep(delay, result)
  if delay == 0 and result == nil then return SLEEP0 end
  if delay == nil then delay = 0 end
  check_time(delay, "sleep", "delay", 2)
  if delay <= 0 and result == nil then return SLEEP0 end
  return setmetatable({ _delay = delay, _result = result }, Sleep)
end

await_it = M.async(function(aw) return aw:await() end, "awaitable")

-- For the other asyncio modules (the combinators and runners use the
-- hot path's own functions).
M._new_future = new_future
M._set_result = set_result
M._set_exception = set_exception
M._retrieved = retrieved
M._typename = typename
M._outcome = outcome
M._make_cancelled_error = make_cancelled_error
M._add_callback = add_callback
M._push = push
M._add_timer = add_timer
M._immediate = IMMEDIATE
M._task_here = task_here
M._current_task_or_fail = current_task_or_fail
M._check_coro = check_coro
M._ensure_future = ensure_future
M._event_loops = event_loops
M._check_closed = check_closed
M._check_time = check_time
M.PENDING, M.CANCELLED, M.FINISHED = PENDING, CANCELLED, FINISHED

return M
