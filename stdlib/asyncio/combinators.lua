--[[
asyncio.combinators: what waits for several awaitables, or for one
under a deadline (Python's tasks.py and timeouts.py): gather, shield,
wait_for, wait, as_completed, timeout, timeout_at. They build on
asyncio.core's futures and use its internal functions directly (gather
is on the path of every task it collects).
]]

local Object = require "gilua.class"
local exc = require "gilua.exceptions"
local args = require "gilua.args"
local time = require "time"
local core = require "asyncio.core"

local RuntimeError, ValueError, TypeError = exc.RuntimeError, exc.ValueError, exc.TypeError
local CancelledError, TimeoutError = core.CancelledError, core.TimeoutError
local Future = core.Future
local PENDING, CANCELLED, FINISHED = core.PENDING, core.CANCELLED, core.FINISHED
local new_future, set_result, set_exception = core._new_future, core._set_result,
  core._set_exception
local retrieved, outcome, make_cancelled_error = core._retrieved, core._outcome,
  core._make_cancelled_error
local add_callback, push, add_timer = core._add_callback, core._push, core._add_timer
local IMMEDIATE, ensure_future, await_future = core._immediate, core._ensure_future,
  core._await_future
local task_here, current_task_or_fail = core._task_here, core._current_task_or_fail
local check_time = core._check_time
local iscoro, typename, async = core.iscoroutine, core._typename, core.async
local type, select, error, tostring, pcall, next, getmetatable, setmetatable =
  type, select, error, tostring, pcall, next, getmetatable, setmetatable
local pack = table.pack
local monotonic = time.monotonic
local is_options = args.is_options

local M = {}

local function any_loop()
  return core._get_running_loop() or core.get_event_loop()
end

-- gather(aw1, aw2, ..., {return_exceptions = true})
local GatheringFuture = Future:extend("asyncio._GatheringFuture")

function GatheringFuture:cancel(msg)
  if self._state ~= PENDING then return false end
  local ret = false
  local children = self._children
  for i = 1, #children do
    if children[i]:cancel(msg) then ret = true end
  end
  if ret then self._cancel_requested = true end
  return ret
end

function M.gather(...)
  local n = select("#", ...)
  local return_exceptions = false
  local last = n > 0 and select(n, ...) or nil
  if n > 0 and is_options(last) then
    for k in next, last do
      if k ~= "return_exceptions" then
        error(TypeError(type(k) == "number"
          and "gather() takes the awaitables as arguments: gather(table.unpack(list))"
          or "gather(): unexpected keyword argument '" .. tostring(k) .. "'"), 2)
      end
    end
    return_exceptions = last.return_exceptions and true or false
    n = n - 1
  end
  local aws = pack(...)
  if n == 0 then
    local loop = any_loop()
    local outer = new_future(loop)
    set_result(outer, { n = 0 })
    return outer
  end
  -- A coroutine given twice becomes one task (Python's rule); a future
  -- given twice simply has two callbacks, each counted once.
  local children, loop = {}, nil
  local seen
  local nfuts = n
  for i = 1, n do
    local aw = aws[i]
    local fut
    if type(aw) == "table" and aw._state ~= nil then
      fut = aw
      if loop == nil then loop = fut._loop end
      if fut._loop ~= loop then
        error(ValueError("gather(): futures are attached to different loops"), 2)
      end
    else
      seen = seen or {}
      fut = seen[aw]
      if fut == nil then
        fut = ensure_future(aw, loop)
        loop = loop or fut._loop
        seen[aw] = fut
      end
    end
    children[i] = fut
  end
  local outer = setmetatable({ _loop = loop, _state = PENDING,
                               _children = children }, GatheringFuture)
  local nfinished = 0
  local function on_child_done(fut)
    nfinished = nfinished + 1
    local state = fut._state
    if outer._state ~= PENDING then
      if state == FINISHED then retrieved(fut) end
      return
    end
    if (state == CANCELLED or fut._failed) and not return_exceptions then
      if state == CANCELLED then
        set_exception(outer, make_cancelled_error(fut))
      else
        retrieved(fut)
        set_exception(outer, fut._exception, fut._tb)
      end
      return
    end
    if nfinished == nfuts then
      local results = { n = n }
      for i = 1, n do
        local f = children[i]
        if f._state == CANCELLED then
          results[i] = make_cancelled_error(f)
        elseif f._failed then
          retrieved(f)
          results[i] = f._exception
        elseif f._n == 1 then
          results[i] = f._result
        elseif f._n > 1 then
          results[i] = f._results[1]
        end
      end
      if outer._cancel_requested then
        set_exception(outer, CancelledError())
      else
        set_result(outer, results)
      end
    end
  end
  IMMEDIATE[on_child_done] = true
  for i = 1, n do
    local f = children[i]
    if f._state ~= PENDING then
      push(loop, on_child_done, f, nil)
    elseif not f._cb1 then f._cb1 = on_child_done
    else add_callback(f, on_child_done) end
  end
  return outer
end

-- shield(aw)
function M.shield(aw)
  local inner = ensure_future(aw)
  if inner._state ~= PENDING then return inner end
  local loop = inner._loop
  local outer = new_future(loop)
  local function inner_done(f)
    if outer._state ~= PENDING then
      if f._state == FINISHED then retrieved(f) end
      return
    end
    if f._state == CANCELLED then outer:cancel()
    elseif f._failed then set_exception(outer, f._exception, f._tb)
    else set_result(outer, outcome(f)) end
  end
  outer:add_done_callback(function(o)
    if inner._state == PENDING then inner:remove_done_callback(inner_done) end
  end)
  inner:add_done_callback(inner_done)
  return outer
end

local function release_waiter(waiter)
  if waiter._state == PENDING then set_result(waiter, false) end
end

-- Cancels fut and waits until it has finished (whatever it does with the
-- cancellation).
local function cancel_and_wait(fut, msg)
  local loop = fut._loop
  local waiter = new_future(loop)
  local function cb() release_waiter(waiter) end
  fut:add_done_callback(cb)
  fut:cancel(msg)
  local ok, e = pcall(await_future, waiter)
  fut:remove_done_callback(cb)
  if not ok then error(e, 0) end
end

-- wait_for(aw, timeout)
M.wait_for = async(function(aw, timeout)
  local task = current_task_or_fail("wait_for")
  local loop = task._loop
  if timeout ~= nil then check_time(timeout, "wait_for", "timeout", 1) end
  local fut = ensure_future(aw, loop)
  if timeout == nil then return await_future(fut) end
  if timeout <= 0 then
    if fut._state ~= PENDING then return fut:result() end
    cancel_and_wait(fut)
    if fut._state == FINISHED then return fut:result() end
    error(TimeoutError(), 0)
  end
  local waiter = new_future(loop)
  local th = add_timer(loop, monotonic() + timeout, release_waiter, waiter)
  local function cb() release_waiter(waiter) end
  fut:add_done_callback(cb)
  local ok, e = pcall(await_future, waiter)
  th:cancel()
  if not ok then
    if fut._state ~= PENDING and CancelledError:is(e) then
      -- the result arrived together with the cancellation: keep it
      fut:remove_done_callback(cb)
      error(e, 0)
    end
    fut:remove_done_callback(cb)
    cancel_and_wait(fut)
    error(e, 0)
  end
  if fut._state ~= PENDING then return fut:result() end
  fut:remove_done_callback(cb)
  cancel_and_wait(fut)
  if fut._state == FINISHED and not fut._failed then
    return fut:result()
  end
  if fut._state == FINISHED and fut._failed then
    local fe = fut._exception
    if not (type(fe) == "table" and CancelledError:is(fe)) then return fut:result() end
  end
  error(TimeoutError(), 0)
end, "wait_for")

M.FIRST_COMPLETED = "FIRST_COMPLETED"
M.FIRST_EXCEPTION = "FIRST_EXCEPTION"
M.ALL_COMPLETED = "ALL_COMPLETED"

-- An array, a set or a table keyed by awaitables -> an array of them.
local function collect(aws, fname)
  if type(aws) ~= "table" or getmetatable(aws) ~= nil then
    error(TypeError(fname .. "(): expect an array or a set of futures, not " ..
                    typename(aws)), 3)
  end
  local list = {}
  if aws[1] ~= nil or next(aws) == nil then
    for i = 1, #aws do list[i] = aws[i] end
  else
    for k, v in next, aws do
      if type(k) == "table" then list[#list + 1] = k else list[#list + 1] = v end
    end
  end
  return list
end

local WAIT_SPEC = { "timeout", "return_when", fname = "wait" }

M.wait = async(function(aws, ...)
  local timeout, return_when = args.get(WAIT_SPEC, ...)
  if timeout ~= nil then check_time(timeout, "wait", "timeout", 1) end
  return_when = return_when or M.ALL_COMPLETED
  if return_when ~= M.FIRST_COMPLETED and return_when ~= M.FIRST_EXCEPTION
     and return_when ~= M.ALL_COMPLETED then
    error(ValueError("Invalid return_when value: " .. tostring(return_when)), 0)
  end
  local list = collect(aws, "wait")
  if #list == 0 then error(ValueError("Set of Tasks/Futures is empty."), 0) end
  local task = current_task_or_fail("wait")
  local loop = task._loop
  local fs = {}
  for i = 1, #list do
    local f = list[i]
    if iscoro(f) then
      error(TypeError("Passing coroutines is forbidden, use tasks explicitly."), 0)
    end
    fs[i] = ensure_future(f, loop)
  end
  local counter = #fs
  local waiter = new_future(loop)
  local th
  if timeout ~= nil then
    th = add_timer(loop, monotonic() + timeout, release_waiter, waiter)
  end
  local function on_done(f)
    counter = counter - 1
    if counter <= 0 or return_when == M.FIRST_COMPLETED or
       (return_when == M.FIRST_EXCEPTION and f._state == FINISHED and f._failed) then
      if th then th:cancel() end
      release_waiter(waiter)
    end
  end
  -- already satisfied?
  local ndone, anyexc = 0, false
  for i = 1, #fs do
    local f = fs[i]
    if f._state ~= PENDING then
      ndone = ndone + 1
      if f._state == FINISHED and f._failed then anyexc = true end
    end
  end
  local satisfied = ndone == #fs or (return_when == M.FIRST_COMPLETED and ndone > 0)
    or (return_when == M.FIRST_EXCEPTION and anyexc)
  if not satisfied then
    for i = 1, #fs do fs[i]:add_done_callback(on_done) end
    local ok, e = pcall(await_future, waiter)
    if th then th:cancel() end
    for i = 1, #fs do fs[i]:remove_done_callback(on_done) end
    if not ok then error(e, 0) end
  end
  local done, pending = {}, {}
  for i = 1, #fs do
    local f = fs[i]
    if f._state ~= PENDING then done[f] = true else pending[f] = true end
  end
  return done, pending
end, "wait")

-- as_completed(aws, {timeout}): an iterator of awaitables, each giving
-- the result of the next future to finish.
local AS_SPEC = { "timeout", fname = "as_completed" }

function M.as_completed(aws, ...)
  local timeout = args.get(AS_SPEC, ...)
  if timeout ~= nil then check_time(timeout, "as_completed", "timeout", 2) end
  local list = collect(aws, "as_completed")
  local loop = any_loop()
  local todo, ntodo = {}, 0
  local fs = {}
  for i = 1, #list do
    local f = ensure_future(list[i], loop)
    loop = f._loop
    if not todo[f] then
      todo[f] = true
      ntodo = ntodo + 1
      fs[#fs + 1] = f
    end
  end
  local done_q, dh, dt = {}, 1, 0        -- finished futures (nil: timeout)
  local waiters = {}
  local th
  local function deliver(f)
    dt = dt + 1
    done_q[dt] = f
    local w = table.remove(waiters, 1)
    if w and w._state == PENDING then set_result(w, true) end
  end
  local function on_done(f)
    if not todo[f] then return end
    todo[f] = nil
    ntodo = ntodo - 1
    deliver(f)
    if ntodo == 0 and th then th:cancel() end
  end
  local function on_timeout()
    for f in next, todo do
      f:remove_done_callback(on_done)
      deliver(false)
    end
    todo = {}
    ntodo = 0
  end
  for i = 1, #fs do fs[i]:add_done_callback(on_done) end
  if timeout ~= nil and #fs > 0 then
    th = loop:call_later(timeout, on_timeout)
  end
  local wait_for_one = async(function()
    while dh > dt do
      local w = new_future(loop)
      waiters[#waiters + 1] = w
      await_future(w)
    end
    local f = done_q[dh]
    done_q[dh] = nil
    dh = dh + 1
    if f == false then error(TimeoutError(), 0) end
    return f:result()
  end, "as_completed")
  local remaining = #fs
  return function()
    if remaining == 0 then return nil end
    remaining = remaining - 1
    return wait_for_one()
  end
end

-- timeout(delay) / timeout_at(when): a to-be-closed context manager.
local Timeout = Object:extend("asyncio.Timeout")
M.Timeout = Timeout

local function on_timeout(self)
  self._task:cancel()
  self._state = "expiring"
  self._handle = nil
end

function Timeout:init(when)
  local task = task_here()
  if not task then
    error(RuntimeError("Timeout should be used inside a task"), 3)
  end
  self._task = task
  self._state = "entered"
  self._cancelling = task:cancelling()
  self:reschedule(when)
end

function Timeout:when() return self._when end

function Timeout:reschedule(when)
  if self._state ~= "entered" then
    error(RuntimeError("Timeout has not been entered or has already expired"), 2)
  end
  if when ~= nil then check_time(when, "Timeout.reschedule", "when", 2) end
  self._when = when
  if self._handle then self._handle:cancel() end
  self._handle = nil
  if when == nil then return end
  local loop = self._task._loop
  if when <= monotonic() then
    self._handle = loop:call_soon(on_timeout, self)
  else
    self._handle = add_timer(loop, when, on_timeout, self)
  end
end

function Timeout:expired()
  return self._state == "expiring" or self._state == "expired"
end

function Timeout:__close(err)
  if self._handle then
    self._handle:cancel()
    self._handle = nil
  end
  if self._state == "expiring" then
    self._state = "expired"
    if self._task:uncancel() <= self._cancelling and err ~= nil
       and type(err) == "table" and CancelledError:is(err) then
      local te = TimeoutError()
      te.__cause__ = err
      error(te, 0)
    end
  elseif self._state == "entered" then
    self._state = "exited"
  end
end

function Timeout:__tostring()
  return ("<Timeout [%s] when=%s>"):format(self._state, tostring(self._when))
end

function M.timeout(delay)
  local when = nil
  if delay ~= nil then
    when = monotonic() + check_time(delay, "timeout", "delay", 2)
  end
  return Timeout(when)
end

function M.timeout_at(when)
  if when ~= nil then check_time(when, "timeout_at", "when", 2) end
  return Timeout(when)
end

return M
