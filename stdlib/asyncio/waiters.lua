--[[
asyncio.waiters: the FIFO of waiting tasks that asyncio's locks
(Lock, Event, Condition, Semaphore, Barrier) and queues share. A waiter
is a future of the loop: the task awaits it, whoever hands the turn over
resolves it. Waiters are served in the order they came, as in Python.

    local q = waiters.new()
    local ok, fut = waiters.wait(q, loop)   -- in a task: awaits its turn
    waiters.wake_first(q, value)            -- elsewhere: hands it over

A waiter whose task is cancelled is marked cancelled at once (Task:cancel
cancels the future it awaits) but leaves the queue only when its task
runs again; the functions below skip such waiters.
]]

local core = require "asyncio.core"

local new_future, await_future, set_result = core._new_future, core._await_future,
  core._set_result
local PENDING, CANCELLED = core.PENDING, core.CANCELLED
local pcall = pcall

local M = {}

-- An array q[h..t] with a head index.
function M.new() return { h = 1, t = 0 } end

function M.push(q, f)
  local t = q.t + 1
  q.t = t
  q[t] = f
end

function M.remove(q, f)
  local h, t = q.h, q.t
  if q[h] == f and h <= t then                 -- the usual case: the head
    q[h] = nil
    if h == t then q.h, q.t = 1, 0 else q.h = h + 1 end
    return
  end
  for i = h, t do
    if q[i] == f then
      for j = i, t - 1 do q[j] = q[j + 1] end
      q[t] = nil
      q.t = t - 1
      return
    end
  end
end

-- The first waiter still pending, taken out of q (nil if none): those
-- before it, already woken or cancelled, leave too.
local function pop_pending(q)
  while q.h <= q.t do
    local f = q[q.h]
    q[q.h] = nil
    q.h = q.h + 1
    if f._state == PENDING then return f end
  end
  q.h, q.t = 1, 0
  return nil
end
M.pop_pending = pop_pending

-- Wakes the first pending waiter with value; false if nobody waited.
function M.wake_first(q, value)
  local f = pop_pending(q)
  if f == nil then return false end
  set_result(f, value)
  return true
end

-- Wakes every pending waiter with value; they stay in q.
function M.wake_all(q, value)
  for i = q.h, q.t do
    local f = q[i]
    if f._state == PENDING then set_result(f, value) end
  end
end

function M.first_pending(q)
  for i = q.h, q.t do
    if q[i]._state == PENDING then return q[i] end
  end
  return nil
end

-- The first waiter not cancelled: pending, or woken and about to run.
function M.first_live(q)
  for i = q.h, q.t do
    if q[i]._state ~= CANCELLED then return q[i] end
  end
  return nil
end

--[[ Awaits a new waiter put at the end of q (the calling task must run
on loop). Returns true and the waiter once woken (it is still in q: the
caller removes it if its turn keeps no place). On an error, a
cancellation mostly, the waiter leaves q and wait returns false, the
error, and whether the waiter had been woken first: its turn must then
go to the next one. ]]
function M.wait(q, loop)
  local fut = new_future(loop)
  local t = q.t + 1
  q.t = t
  q[t] = fut
  local ok, e = pcall(await_future, fut)
  if ok then return true, fut end
  M.remove(q, fut)
  return false, e, fut._state ~= PENDING and fut._state ~= CANCELLED
end

return M
