--[[
asyncio.locks: Lock, Event, Condition, Semaphore, BoundedSemaphore and
Barrier for tasks of one event loop. None of them blocks the OS thread:
a task that has to wait awaits a future that another task resolves.

Python's `async with lock:` is `local _ <close> = lock:acquire():await()`
(awaiting acquire returns the object itself, which releases at the end
of the scope). Methods that wait return awaitables (`ev:wait():await()`,
`cond:wait():await()`, `sem:acquire():await()`, `barrier:wait():await()`).
Waiters are served in the order they came (FIFO), as in Python.
]]

local Object = require "gilua.class"
local exc = require "gilua.exceptions"
local args = require "gilua.args"
local core = require "asyncio.core"
local waiters = require "asyncio.waiters"

local RuntimeError, ValueError = exc.RuntimeError, exc.ValueError
local CancelledError = core.CancelledError
local async, set_result = core.async, core._set_result
local PENDING = core.PENDING
local wq_new, wq_wait, wq_remove = waiters.new, waiters.wait, waiters.remove
local wq_first_live, wq_first_pending = waiters.first_live, waiters.first_pending
local wq_wake_first, wq_wake_all = waiters.wake_first, waiters.wake_all
local pcall, error, tostring = pcall, error, tostring

local M = {}

local function loop_of(self)
  local loop = self._loop
  if loop == nil then
    loop = core.get_running_loop()
    self._loop = loop
  elseif loop ~= core._get_running_loop() then
    error(RuntimeError(tostring(self) .. " is bound to a different event loop"), 3)
  end
  return loop
end

-- Lock -------------------------------------------------------------------------

local Lock = Object:extend("asyncio.Lock")
M.Lock = Lock

function Lock:init()
  self._locked = false
  self._waiters = wq_new()
end

function Lock:locked() return self._locked end

--[[ As Python's: one waiter is woken at a time, and a woken waiter keeps
its place until it runs and takes the lock, so that nobody arriving
meanwhile takes it first (two tasks would hold it). ]]
local function lock_wake(self)
  local f = wq_first_live(self._waiters)
  if f and f._state == PENDING then set_result(f, true) end
end

local lock_acquire = async(function(self)
  if not self._locked and wq_first_live(self._waiters) == nil then
    self._locked = true
    return self
  end
  local q = self._waiters
  local ok, fut = wq_wait(q, loop_of(self))
  if not ok then
    -- woken and then cancelled: let the next one have it
    if not self._locked then lock_wake(self) end
    error(fut, 0)
  end
  wq_remove(q, fut)
  self._locked = true
  return self
end, "Lock.acquire")

function Lock:acquire() return lock_acquire(self) end

function Lock:release()
  if not self._locked then error(RuntimeError("Lock is not acquired."), 2) end
  self._locked = false
  lock_wake(self)
end

function Lock:__close() if self._locked then self:release() end end

function Lock:__tostring()
  return ("<asyncio.Lock [%s]>"):format(self._locked and "locked" or "unlocked")
end

-- Event --------------------------------------------------------------------------

local Event = Object:extend("asyncio.Event")
M.Event = Event

function Event:init()
  self._value = false
  self._waiters = wq_new()
end

function Event:is_set() return self._value end

function Event:set()
  if self._value then return end
  self._value = true
  wq_wake_all(self._waiters, true)
end

function Event:clear() self._value = false end

local event_wait = async(function(self)
  if self._value then return true end
  local q = self._waiters
  local ok, fut = wq_wait(q, loop_of(self))
  if not ok then error(fut, 0) end
  wq_remove(q, fut)
  return true
end, "Event.wait")

function Event:wait() return event_wait(self) end

function Event:__tostring()
  return ("<asyncio.Event [%s]>"):format(self._value and "set" or "unset")
end

-- Condition ---------------------------------------------------------------------------

local Condition = Object:extend("asyncio.Condition")
M.Condition = Condition

function Condition:init(lock)
  if lock == nil then lock = Lock()
  elseif not Lock:is(lock) then
    error(exc.TypeError("Condition(): argument 'lock' must be an asyncio.Lock, not " ..
                        core._typename(lock)), 3)
  end
  self._lock = lock
  self._waiters = wq_new()
end

-- Awaiting acquire returns the condition, which releases its lock at the
-- end of a `<close>` scope.
local cond_acquire = async(function(self)
  self._lock:acquire():await()
  return self
end, "Condition.acquire")

function Condition:acquire() return cond_acquire(self) end
function Condition:release() return self._lock:release() end
function Condition:locked() return self._lock:locked() end
function Condition:__close() self._lock:__close() end

local function lock_again(lock) return lock:acquire():await() end

local cond_wait = async(function(self)
  local lock = self._lock
  if not lock:locked() then
    error(RuntimeError("cannot wait on un-acquired lock"), 0)
  end
  lock:release()
  local q = self._waiters
  local ok, e, woken = wq_wait(q, loop_of(self))
  -- a notification that reached a waiter cancelled meanwhile goes to the
  -- next one, so that notify(n) still wakes n tasks
  if not ok and woken then wq_wake_first(q, false) end
  -- take the lock back whatever happened, even if cancelled meanwhile
  local cancelled = nil
  while true do
    local ok2, e2 = pcall(lock_again, lock)
    if ok2 then break end
    if CancelledError:is(e2) then cancelled = e2 else error(e2, 0) end
  end
  if not ok then error(e, 0) end
  if cancelled then error(cancelled, 0) end
  return true
end, "Condition.wait")

function Condition:wait() return cond_wait(self) end

local cond_wait_for = async(function(self, predicate)
  local result = predicate()
  while not result do
    cond_wait(self):await()
    result = predicate()
  end
  return result
end, "Condition.wait_for")

function Condition:wait_for(predicate) return cond_wait_for(self, predicate) end

function Condition:notify(n)
  if not self._lock:locked() then
    error(RuntimeError("cannot notify on un-acquired lock"), 2)
  end
  n = n or 1
  local q, woken = self._waiters, 0
  while woken < n and wq_wake_first(q, false) do woken = woken + 1 end
end

function Condition:notify_all() self:notify(math.huge) end

-- Semaphore ----------------------------------------------------------------------------

local Semaphore = Object:extend("asyncio.Semaphore")
M.Semaphore = Semaphore

function Semaphore:init(value)
  if args.is_options(value) then value = value.value end
  value = value == nil and 1 or args.check(value, "integer", "Semaphore", "value")
  if value < 0 then error(ValueError("Semaphore initial value must be >= 0"), 3) end
  self._value = value
  self._waiters = wq_new()
end

function Semaphore:locked()
  return self._value == 0 or wq_first_pending(self._waiters) ~= nil
end

--[[ A release with waiters hands its unit straight to the first of them
(its future's result); the value only grows when nobody waits. ]]
local function pass_on(self)
  if not wq_wake_first(self._waiters, true) then self._value = self._value + 1 end
end

-- Awaiting acquire returns the semaphore, which releases at the end of a
-- `<close>` scope (Python's `async with sem:`).
local sem_acquire = async(function(self)
  if self._value > 0 and wq_first_pending(self._waiters) == nil then
    self._value = self._value - 1
    return self
  end
  local ok, e, woken = wq_wait(self._waiters, loop_of(self))
  if not ok then
    if woken then pass_on(self) end     -- we were given a unit: pass it on
    error(e, 0)
  end
  return self                           -- wake_first took the waiter out
end, "Semaphore.acquire")

function Semaphore:acquire() return sem_acquire(self) end


function Semaphore:release()
  pass_on(self)
end

function Semaphore:__close() self:release() end

function Semaphore:__tostring()
  return ("<%s [%s, value:%d]>"):format(self.__name,
    self:locked() and "locked" or "unlocked", self._value)
end

local BoundedSemaphore = Semaphore:extend("asyncio.BoundedSemaphore")
M.BoundedSemaphore = BoundedSemaphore

function BoundedSemaphore:init(value)
  Semaphore.init(self, value)
  self._bound_value = self._value
end

function BoundedSemaphore:release()
  if self._value >= self._bound_value and wq_first_pending(self._waiters) == nil then
    error(ValueError("BoundedSemaphore released too many times"), 2)
  end
  Semaphore.release(self)
end

-- Barrier ------------------------------------------------------------------------------

M.BrokenBarrierError = RuntimeError:extend("asyncio.BrokenBarrierError")
local BrokenBarrierError = M.BrokenBarrierError

local Barrier = Object:extend("asyncio.Barrier")
M.Barrier = Barrier

function Barrier:init(parties)
  if args.is_options(parties) then parties = parties.parties end
  parties = args.check(parties, "integer", "Barrier", "parties")
  if parties < 1 then error(ValueError("parties must be > 0"), 3) end
  self.parties = parties
  self._count = 0
  self._broken = false
  self._waiters = wq_new()
end

Barrier:property("n_waiting", function(self) return self._count end)
Barrier:property("broken", function(self) return self._broken end)

--[[ wait() returns the arrival index (0 .. parties-1), as Python does.
The last to arrive releases the others; a cancelled waiter breaks the
barrier (Python's rule). ]]
local barrier_wait = async(function(self)
  if self._broken then error(BrokenBarrierError(), 0) end
  local index = self._count
  self._count = index + 1
  if self._count == self.parties then
    local q = self._waiters
    self._waiters = wq_new()
    self._count = 0
    wq_wake_all(q, true)
    return index
  end
  local ok, fut, woken = wq_wait(self._waiters, loop_of(self))
  if not ok then
    -- cancelled while the barrier filled (not once it let its waiters go)
    if not woken and not self._broken then self:abort() end
    error(fut, 0)
  end
  if fut._result == "broken" then error(BrokenBarrierError(), 0) end
  return index
end, "Barrier.wait")

function Barrier:wait() return barrier_wait(self) end

function Barrier:abort()
  self._broken = true
  local q = self._waiters
  self._waiters = wq_new()
  self._count = 0
  wq_wake_all(q, "broken")
end

local barrier_reset = async(function(self)
  if self._count > 0 then self:abort() end
  self._broken = false
end, "Barrier.reset")

function Barrier:reset() return barrier_reset(self) end

function Barrier:__tostring()
  return ("<asyncio.Barrier [%s, waiters:%d/%d]>"):format(
    self._broken and "broken" or "filling", self._count, self.parties)
end

return M
