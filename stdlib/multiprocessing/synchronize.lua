--[[
multiprocessing.synchronize: the locks of processes, as Python's
multiprocessing/synchronize.py: Lock, RLock, Semaphore, BoundedSemaphore,
Event, Condition, Barrier, on the process-shared SemLock of
_multiprocessing. `require "multiprocessing"` gives them too (mp.Lock...).
Their documentation is multiprocessing's (docs/multiprocessing.md).
]]

local _mp = require "_multiprocessing"
local Object = require "gilua.class"
local exc = require "gilua.exceptions"
local args = require "gilua.args"
local threading = require "threading"
local time = require "time"
local util = require "multiprocessing._util"

local RuntimeError, ValueError, TypeError = exc.RuntimeError, exc.ValueError, exc.TypeError
local error, pcall = error, pcall
local monotonic = time.monotonic
local is_options = args.is_options
local no_args, check_int = util.no_args, util.check_int

local M = {}

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

return M
