--[[
concurrent._base: the core of concurrent.futures, as Python's
concurrent/futures/_base.py: Future, wait, as_completed, the Executor base
class, the exceptions and constants. concurrent.futures (with the thread
pool) and multiprocessing.executor (the process pool) are both built on
it, so neither has to require the other. Its documentation is
concurrent.futures's.
]]

local threading = require "threading"
require "queue"                 -- the exception classes of the C queue
local _thread = require "_thread"
local Object = require "gilua.class"
local exc = require "gilua.exceptions"
local args = require "gilua.args"
local errors = require "gilua.errors"
local time = require "time"

local Condition, Event = threading.Condition, threading.Event
local allocate_lock = _thread.allocate_lock
local monotonic = time.monotonic
local BaseException, TypeError, ValueError, RuntimeError =
  exc.BaseException, exc.TypeError, exc.ValueError, exc.RuntimeError
local type, select, error, tostring, pcall, xpcall, next, rawget, getmetatable,
      setmetatable =
  type, select, error, tostring, pcall, xpcall, next, rawget, getmetatable,
  setmetatable
local pack, unpack, traceback = table.pack, table.unpack, debug.traceback
local huge = math.huge

local M = {}

M.FIRST_COMPLETED = "FIRST_COMPLETED"
M.FIRST_EXCEPTION = "FIRST_EXCEPTION"
M.ALL_COMPLETED = "ALL_COMPLETED"
local FIRST_EXCEPTION, ALL_COMPLETED = M.FIRST_EXCEPTION, M.ALL_COMPLETED
local AS_COMPLETED = "AS_COMPLETED"

local Error = exc.Exception:extend("concurrent.futures.Error")
M.Error = Error
M.CancelledError = Error:extend("concurrent.futures.CancelledError")
M.InvalidStateError = Error:extend("concurrent.futures.InvalidStateError")
M.TimeoutError = exc.TimeoutError
M.BrokenExecutor = RuntimeError:extend("concurrent.futures.BrokenExecutor")
M.BrokenThreadPool = M.BrokenExecutor:extend("concurrent.futures.thread.BrokenThreadPool")
local CancelledError, InvalidStateError, TimeoutError, BrokenThreadPool =
  M.CancelledError, M.InvalidStateError, M.TimeoutError, M.BrokenThreadPool

local is_options, callable = args.is_options, args.callable

-- The one rule for timeouts (gilua.args): a negative one means "do not
-- wait"; NaN, inf and huge ones are errors.
local function timeout_arg(t, fname)
  return args.timeout(t, fname)
end

local typename = args.typename

-- A traceback taken in a task, without the frames of the worker loop (the
-- xpcall of concurrent.futures that ran the task, and what called it).
local function trim(tb)
  local cut = tb:find("\n\t%[C%]: in %a+ 'xpcall'\n\t[^\n]*stdlib/concurrent/[%w_]+%.lua:")
  if cut then return tb:sub(1, cut - 1) end
  return tb
end

-- An error and where it happened, for whoever reports or re-raises it.
local function traced(e)
  local tb
  if BaseException:is(e) then
    local etb = e.traceback
    if type(etb) == "string" then e.traceback = trim(etb) end
  else
    tb = trim(traceback(nil, 2))
  end
  return errors.box(e, tb)
end

local unbox, report = errors.unbox, errors.report

-- Future ---------------------------------------------------------------------

local PENDING, RUNNING, CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED =
  "PENDING", "RUNNING", "CANCELLED", "CANCELLED_AND_NOTIFIED", "FINISHED"

local function is_cancelled(state)
  return state == CANCELLED or state == CANCELLED_AND_NOTIFIED
end

local function is_done(state)
  return state == FINISHED or state == CANCELLED or state == CANCELLED_AND_NOTIFIED
end

--[[
Fields: _state; _condition (its lock guards every change of state and of
_waiters/_done_callbacks); the outcome: _n values in _result (n == 1) or
_results (a table.pack), or _failed with _exception and, for errors that
are not exception objects, _traceback. _waiters: the Waiter objects of
wait()/as_completed() calls, told once when the future is done.
]]
local Future = Object:extend("concurrent.futures.Future")
M.Future = Future

function Future:init()
  self._condition = Condition(allocate_lock())
  self._state = PENDING
  self._n = 0
end

-- Called with the lock held, when the state has just become final.
local function tell_waiters(self, kind)
  local ws = self._waiters
  if ws == nil then return end
  for i = 1, #ws do ws[i]:add(self, kind) end
end

function Future:_invoke_callbacks()
  local cbs = self._done_callbacks
  if cbs == nil then return end
  for i = 1, #cbs do
    local ok, box = xpcall(cbs[i], traced, self)
    if not ok then
      report("exception calling callback for " .. tostring(self), unbox(box))
    end
  end
end

function Future:done()
  return is_done(self._state)
end

function Future:running()
  return self._state == RUNNING
end

function Future:cancelled()
  return is_cancelled(self._state)
end

function Future:cancel()
  local cond = self._condition
  cond:acquire()
  local state = self._state
  if state == RUNNING or state == FINISHED then
    cond:release()
    return false
  end
  if state == PENDING then
    self._state = CANCELLED
    tell_waiters(self, "cancelled")
    cond:notify_all()
  end
  cond:release()
  if state == PENDING then self:_invoke_callbacks() end
  return true
end

--[[ For executors: true if the call may start (the future is now running),
false if it was cancelled. ]]
function Future:set_running_or_notify_cancel()
  local cond = self._condition
  cond:acquire()
  local state = self._state
  if state == PENDING then
    self._state = RUNNING
    cond:release()
    return true
  end
  if state == CANCELLED then self._state = CANCELLED_AND_NOTIFIED end
  cond:release()
  if is_cancelled(state) then return false end
  error(RuntimeError("Future in unexpected state: " .. tostring(self)), 2)
end

-- Takes the lock, or raises InvalidStateError for a future already done.
local function lock_for_outcome(self)
  local cond = self._condition
  cond:acquire()
  local state = self._state
  if is_done(state) then
    cond:release()
    error(InvalidStateError(state .. ": " .. tostring(self)), 3)
  end
  return cond
end

local function settle(self, cond, kind)
  self._state = FINISHED
  tell_waiters(self, kind)
  cond:notify_all()
  cond:release()
  if self._done_callbacks then self:_invoke_callbacks() end
end

function Future:set_result(...)
  local cond = lock_for_outcome(self)
  local n = select("#", ...)
  if n == 1 then self._result = ... else self._results = pack(...) end
  self._n = n
  settle(self, cond, "result")
end

-- set_exception(e): e is raised by result(); `tb` (internal) is the
-- traceback of an error that is not an exception object.
function Future:set_exception(e, tb)
  local cond = lock_for_outcome(self)
  self._failed = true
  self._exception = e
  self._traceback = tb
  settle(self, cond, "exception")
end

-- Waits (at most `timeout`) for a final state; returns the state.
local function wait_final(self, timeout)
  local cond = self._condition
  cond:acquire()
  local state = self._state
  if state == PENDING or state == RUNNING then
    local ok, err = pcall(cond._wait, cond, timeout)
    if not ok then
      cond:release()
      error(err, 0)
    end
    state = self._state
  end
  cond:release()
  return state
end

local function outcome(self)
  if self._failed then
    local e, tb = self._exception, self._traceback
    if type(e) == "string" and tb ~= nil then error(e .. "\n" .. tb, 0) end
    error(e, 0)
  end
  local n = self._n
  if n == 1 then return self._result end
  if n == 0 then return end
  return unpack(self._results, 1, n)
end

function Future:result(timeout)
  local state = self._state
  if state == FINISHED then return outcome(self) end
  if is_options(timeout) then timeout = timeout.timeout end
  timeout = timeout_arg(timeout, "Future.result")
  if not is_done(state) then state = wait_final(self, timeout) end
  if is_cancelled(state) then error(CancelledError(), 2) end
  if state ~= FINISHED then error(TimeoutError(), 2) end
  return outcome(self)
end

function Future:exception(timeout)
  local state = self._state
  if state ~= FINISHED then
    if is_options(timeout) then timeout = timeout.timeout end
    timeout = timeout_arg(timeout, "Future.exception")
    if not is_done(state) then state = wait_final(self, timeout) end
    if is_cancelled(state) then error(CancelledError(), 2) end
    if state ~= FINISHED then error(TimeoutError(), 2) end
  end
  if self._failed then return self._exception end
  return nil
end

function Future:add_done_callback(fn)
  args.check(fn, "callable", "Future.add_done_callback", "fn")
  local cond = self._condition
  cond:acquire()
  if not is_done(self._state) then
    local cbs = self._done_callbacks
    if cbs == nil then
      cbs = {}
      self._done_callbacks = cbs
    end
    cbs[#cbs + 1] = fn
    cond:release()
    return
  end
  cond:release()
  local ok, box = xpcall(fn, traced, self)
  if not ok then
    report("exception calling callback for " .. tostring(self), unbox(box))
  end
end

local DESCRIPTION = { PENDING = "pending", RUNNING = "running",
                      CANCELLED = "cancelled", CANCELLED_AND_NOTIFIED = "cancelled",
                      FINISHED = "finished" }

function Future:__tostring()
  local state = self._state
  local s = ("<Future at %p state=%s"):format(self, DESCRIPTION[state])
  if state == FINISHED then
    if self._failed then s = s .. " raised " .. typename(self._exception)
    elseif self._n == 0 then s = s .. " returned nothing"
    elseif self._n == 1 then s = s .. " returned " .. typename(self._result)
    else s = s .. " returned " .. typename(self._results[1]) .. ", ..." end
  end
  return s .. ">"
end

-- Waiters: what wait() and as_completed() sleep on -----------------------------

local Waiter = Object:extend()

function Waiter:init(mode, pending)
  self.lock = allocate_lock()
  self.event = Event()
  self.finished, self.nfinished = {}, 0
  self.mode, self.pending = mode, pending
  if pending == 0 then self.event:set() end
end

-- f is done (kind: "result", "exception" or "cancelled").
function Waiter:add(f, kind)
  local lock = self.lock
  lock:acquire()
  local n = self.nfinished + 1
  self.nfinished = n
  self.finished[n] = f
  local mode, wake = self.mode, true
  if mode == ALL_COMPLETED or (mode == FIRST_EXCEPTION and kind ~= "exception") then
    local p = self.pending - 1
    self.pending = p
    wake = p <= 0
  end
  lock:release()
  if wake then self.event:set() end
end

local function kind_of(f)
  if is_cancelled(f._state) then return "cancelled" end
  return f._failed and "exception" or "result"
end

-- Each future either is done already (the waiter is told here) or will
-- tell the waiter when it is: so no future is missed, with one lock at a
-- time.
local function install(waiter, list)
  for i = 1, #list do
    local f = list[i]
    local cond = f._condition
    cond:acquire()
    if is_done(f._state) then
      cond:release()
      waiter:add(f, kind_of(f))
    else
      local ws = f._waiters
      if ws == nil then
        ws = {}
        f._waiters = ws
      end
      ws[#ws + 1] = waiter
      cond:release()
    end
  end
end

local function uninstall(waiter, list)
  for i = 1, #list do
    local f = list[i]
    local ws = f._waiters
    if ws ~= nil then
      local cond = f._condition
      cond:acquire()
      for j = #ws, 1, -1 do
        if ws[j] == waiter then
          table.remove(ws, j)
          break
        end
      end
      cond:release()
    end
  end
end

-- The futures of `fs` (an array, a set, or a table keyed by futures), once
-- each, array part first.
local function collect(fs, fname)
  args.check(fs, "table", fname, "fs")
  local list, seen, n = {}, {}, 0
  local function add(f)
    if not seen[f] then
      seen[f] = true
      n = n + 1
      list[n] = f
    end
  end
  for i = 1, #fs do
    local v = fs[i]
    if Future:is(v) then add(v) end
  end
  for k, v in next, fs do
    if Future:is(k) then add(k)
    elseif Future:is(v) then add(v)
    else
      error(TypeError(fname .. "(): fs must hold futures (as the values of an " ..
                      "array or the keys of a table), found " .. typename(v)), 3)
    end
  end
  return list
end

local WAIT_ARGS = { "timeout", "return_when", fname = "wait" }
local RETURN_WHEN = { FIRST_COMPLETED = true, FIRST_EXCEPTION = true, ALL_COMPLETED = true }

--[[ wait(fs, timeout, return_when) -> done, not_done: sets (tables keyed by
future). ]]
function M.wait(fs, ...)
  local timeout, return_when = args.get(WAIT_ARGS, ...)
  timeout = timeout_arg(timeout, "wait")
  if return_when == nil then return_when = ALL_COMPLETED end
  if not RETURN_WHEN[return_when] then
    error(ValueError("wait(): invalid return condition: " .. tostring(return_when)), 2)
  end
  local list = collect(fs, "wait")
  local waiter = Waiter(return_when, #list)
  install(waiter, list)
  waiter.event:wait(timeout)
  uninstall(waiter, list)
  local done, not_done = {}, {}
  waiter.lock:acquire()
  local fin = waiter.finished
  for i = 1, waiter.nfinished do done[fin[i]] = true end
  waiter.lock:release()
  for i = 1, #list do
    local f = list[i]
    if not done[f] then not_done[f] = true end
  end
  return done, not_done
end

local CLOSER = {
  __close = function(c) c.close() end,
}

--[[ as_completed(fs, timeout): an iterator for the generic for, giving each
future once, as it finishes (those already done first). Raises
TimeoutError when `timeout` seconds (from the call) pass first. ]]
function M.as_completed(fs, timeout)
  if is_options(timeout) then timeout = timeout.timeout end
  timeout = timeout_arg(timeout, "as_completed")
  local deadline = timeout and monotonic() + timeout
  local list = collect(fs, "as_completed")
  local total = #list
  local waiter = Waiter(AS_COMPLETED, total)
  install(waiter, list)
  local given, batch, bi, bn = 0, {}, 1, 0
  local attached = true
  local function close()
    if attached then
      attached = false
      uninstall(waiter, list)
    end
  end
  local function iter()
    while true do
      if bi <= bn then
        local f = batch[bi]
        batch[bi] = nil
        bi = bi + 1
        given = given + 1
        return f
      end
      if given >= total then
        close()
        return nil
      end
      local lock = waiter.lock
      lock:acquire()
      batch, bn, bi = waiter.finished, waiter.nfinished, 1
      waiter.finished, waiter.nfinished = {}, 0
      waiter.event:clear()
      lock:release()
      if bn == 0 then
        local wait
        if deadline then
          wait = deadline - monotonic()
          if wait < 0 then
            close()
            error(TimeoutError(("%d (of %d) futures unfinished"):format(
                  total - given, total)), 2)
          end
        end
        waiter.event:wait(wait)
      end
    end
  end
  return iter, nil, nil, setmetatable({ close = close }, CLOSER)
end

-- Executor -------------------------------------------------------------------

--[[
The base class of the executors. A subclass defines submit(fn, ...) ->
Future and shutdown(wait, cancel_futures); map and __close come from here.
]]
local Executor = Object:extend("concurrent.futures.Executor")
M.Executor = Executor

function Executor:submit()
  error(exc.NotImplementedError("submit() is defined by the executor classes"), 2)
end

function Executor:shutdown() end

-- `local pool <close> = ...`: shutdown(wait = true) at the end of the scope.
function Executor:__close()
  self:shutdown(true)
end

local MAP_OPTIONS = { timeout = true, chunksize = true, buffersize = true }

local function map_options(t)
  if not is_options(t) or t[1] ~= nil or next(t) == nil then return false end
  for k in next, t do
    if not MAP_OPTIONS[k] then return false end
  end
  return true
end

local function cancel_from(fs, j, n)
  for k = j, n do fs[k]:cancel() end
end

--[[ map(fn, xs, ys, ..., [{timeout =}]) -> array of fn(xs[i], ys[i], ...),
in order. All calls are submitted at once. ]]
function Executor:map(fn, ...)
  args.check(fn, "callable", "Executor.map", "fn")
  local n = select("#", ...)
  local arrays = { ... }
  local timeout
  if n >= 2 and map_options(arrays[n]) then
    timeout = arrays[n].timeout
    n = n - 1
  end
  timeout = timeout_arg(timeout, "Executor.map")
  if n == 0 then error(TypeError("Executor.map(): at least one array is needed"), 2) end
  local len = huge
  for i = 1, n do
    local a = args.check(arrays[i], "table", "Executor.map", "array " .. i)
    if #a < len then len = #a end
  end
  local deadline = timeout and monotonic() + timeout
  local fs = {}
  if n == 1 then
    local xs = arrays[1]
    for j = 1, len do fs[j] = self:submit(fn, xs[j]) end
  else
    local row = {}
    for j = 1, len do
      for i = 1, n do row[i] = arrays[i][j] end
      fs[j] = self:submit(fn, unpack(row, 1, n))
    end
  end
  local results = {}
  for j = 1, len do
    local f = fs[j]
    local ok, r
    if deadline then
      local left = deadline - monotonic()
      ok, r = pcall(f.result, f, left > 0 and left or 0)
    else
      ok, r = pcall(f.result, f)
    end
    if not ok then
      cancel_from(fs, j + 1, len)
      error(r, 0)
    end
    results[j] = r
  end
  return results
end

-- For the executors: the message handler that keeps an error's traceback.
M._traced = traced

return M
