#!/usr/bin/env gilua
-- asyncio unwinds a task that ends: when a task fails or is cancelled,
-- every pending <close> variable of its coroutine runs, in order, with
-- the error (a CancelledError when cancelled), and may await. So
-- `local _ <close> = lock:acquire():await()` never leaves a Lock,
-- Semaphore or Condition held; asyncio.timeout with <close> ends in
-- TimeoutError; a TaskGroup waits for its tasks when the body fails or
-- is cancelled; a storm of cancellations leaves nothing held. Bad delays
-- (NaN) are refused instead of stopping the loop's timers.
local t = require "tap"
local asyncio = require "asyncio"
local threading = require "threading"
local time = require "time"

local async, run, sleep, spawn = asyncio.async, asyncio.run, asyncio.sleep,
  asyncio.create_task
local CancelledError = asyncio.CancelledError

-- An object whose closing logs its name and the error it was closed with.
local function closer(log, name)
  return setmetatable({}, { __close = function(_, e)
    local what = e == nil and "nil" or CancelledError:is(e) and "cancelled"
                 or ValueError:is(e) and "ValueError" or tostring(e)
    log[#log + 1] = name .. ":" .. what
  end })
end

-- The error a task ended with (nil if it returned), waiting at most 5 s
-- (then "hung": what the old unwinding did to tasks left waiting).
local function outcome(task)
  local _, pending = asyncio.wait({ task }, { timeout = 5 }):await()
  if next(pending) then return "hung" end
  local ok, e = pcall(task.await, task)
  if ok then return nil end
  return e
end

-- <close> variables of a task that fails or is cancelled -------------------------
run(async(function()
  local log = {}
  local failing = spawn(async(function()
    local a <close> = closer(log, "a")
    local b <close> = closer(log, "b")
    sleep(0):await()
    error(ValueError("boom"))
  end)())
  local e = outcome(failing)
  t.ok(ValueError:is(e), "a failing task keeps its error")
  t.is(table.concat(log, " "), "b:ValueError a:ValueError",
       "a failing task closes its <close> variables, last first, with the error")

  log = {}
  local sleeper = spawn(async(function()
    local a <close> = closer(log, "a")
    local b <close> = closer(log, "b")
    sleep(10):await()
  end)())
  sleep(0):await()
  sleeper:cancel()
  e = outcome(sleeper)
  t.ok(CancelledError:is(e) and sleeper:cancelled(), "a cancelled task ends cancelled")
  t.is(table.concat(log, " "), "b:cancelled a:cancelled",
       "a cancelled task closes its <close> variables with the CancelledError")

  log = {}
  local nested = async(function()
    local inner <close> = closer(log, "inner")
    sleep(10):await()
  end)
  local outer = spawn(async(function()
    local o <close> = closer(log, "outer")
    nested():await()
  end)())
  sleep(0):await()
  outer:cancel()
  outcome(outer)
  t.is(table.concat(log, " "), "inner:cancelled outer:cancelled",
       "... through awaited coroutines too")

  -- a closing method may await while its task unwinds
  log = {}
  local waits = spawn(async(function()
    local _ <close> = setmetatable({}, { __close = function(_, err)
      sleep(0.01):await()
      log[#log + 1] = "closed after a sleep:" .. (CancelledError:is(err) and "cancelled" or "?")
    end })
    sleep(10):await()
  end)())
  sleep(0):await()
  waits:cancel()
  outcome(waits)
  t.is(log[1], "closed after a sleep:cancelled", "a closing method awaits while its task unwinds")

  -- an error raised by a closing method replaces the one in flight
  local replaced = spawn(async(function()
    local _ <close> = setmetatable({}, { __close = function() error(RuntimeError("from close")) end })
    error(ValueError("first"))
  end)())
  t.ok(RuntimeError:is(outcome(replaced)), "an error from a closing method replaces the task's error")

  -- a string error keeps the traceback of where it was raised
  local plain = spawn(async(function()
    local _ <close> = closer({}, "x")
    error("plain error")
  end)())
  e = outcome(plain)
  t.like(tostring(e), "plain error.*stack traceback", "a string error keeps its traceback")
end)())

-- Lock ------------------------------------------------------------------------------
run(async(function()
  local lock = asyncio.Lock()
  local holder = spawn(async(function()
    local _ <close> = lock:acquire():await()
    sleep(0):await()
    error(ValueError("inside the lock"))
  end)())
  outcome(holder)
  t.ok(not lock:locked(), "Lock: released when the task holding it fails")

  local waiting = spawn(async(function()
    local _ <close> = lock:acquire():await()
    sleep(0.01):await()
  end)())
  local holder2 = spawn(async(function()
    local _ <close> = lock:acquire():await()
    sleep(10):await()
  end)())
  sleep(0):await()
  t.ok(lock:locked(), "Lock: held by a task")
  t.is(outcome(waiting), nil, "Lock: a waiter gets it after the failed holder")
  sleep(0):await()
  holder2:cancel()
  t.ok(CancelledError:is(outcome(holder2)), "the holder is cancelled")
  t.ok(not lock:locked(), "Lock: released when the task holding it is cancelled")
  local ok = pcall(function() asyncio.wait_for(lock:acquire(), 0.5):await() end)
  t.ok(ok and lock:locked(), "... and acquirable at once")
  lock:release()
end)())

-- Semaphore, BoundedSemaphore -------------------------------------------------------------
run(async(function()
  for _, cls in ipairs{ asyncio.Semaphore, asyncio.BoundedSemaphore } do
    local name = cls.__name
    local sem = cls(2)
    do
      local s <close> = sem:acquire():await()
      t.is(s, sem, name .. ": awaiting acquire returns the semaphore")
      t.is(sem._value, 1, name .. ": one unit taken inside the scope")
    end
    t.is(sem._value, 2, name .. ": <close> gives it back")

    local failing = spawn(async(function()
      local _ <close> = sem:acquire():await()
      sleep(0):await()
      error(ValueError("inside"))
    end)())
    outcome(failing)
    t.is(sem._value, 2, name .. ": given back when the task holding it fails")

    local holders = {}
    for i = 1, 3 do                       -- the third waits
      holders[i] = spawn(async(function()
        local _ <close> = sem:acquire():await()
        sleep(10):await()
      end)())
    end
    sleep(0):await()
    t.ok(sem:locked(), name .. ": two holders and a waiter")
    for i = 1, 3 do holders[i]:cancel() end
    for i = 1, 3 do outcome(holders[i]) end
    t.is(sem._value, 2, name .. ": every unit back after cancelling holders and waiter")
    t.ok(not sem:locked(), name .. ": not locked")
  end
end)())

-- Condition ----------------------------------------------------------------------------
run(async(function()
  local cond = asyncio.Condition()
  do
    local c <close> = cond:acquire():await()
    t.is(c, cond, "Condition: awaiting acquire returns the condition")
    t.ok(cond:locked(), "... locked inside the scope")
  end
  t.ok(not cond:locked(), "... released by <close>")

  local waiter = spawn(async(function()
    local _ <close> = cond:acquire():await()
    cond:wait():await()
  end)())
  local failing = spawn(async(function()
    local _ <close> = cond:acquire():await()
    error(ValueError("inside"))
  end)())
  sleep(0):await(); sleep(0):await()
  t.ok(ValueError:is(outcome(failing)) and not cond:locked(),
       "Condition: released when the task holding it fails")
  waiter:cancel()
  t.ok(CancelledError:is(outcome(waiter)), "a task in cond:wait() is cancelled")
  t.ok(not cond:locked(), "Condition: its lock, taken back by wait(), is released")

  -- a notification given to a waiter cancelled before it ran goes on
  local woke = 0
  local a = spawn(async(function()
    local _ <close> = cond:acquire():await()
    cond:wait():await()
    woke = woke + 1
  end)())
  local b = spawn(async(function()
    local _ <close> = cond:acquire():await()
    cond:wait():await()
    woke = woke + 1
  end)())
  sleep(0):await(); sleep(0):await()
  do
    local _ <close> = cond:acquire():await()
    cond:notify(1)
  end
  a:cancel()
  outcome(a)
  sleep(0):await(); sleep(0):await()
  t.is(woke, 1, "Condition: a notification that reached a cancelled waiter wakes the next one")
  t.ok(b:done(), "... which finished")
end)())

-- timeout -------------------------------------------------------------------------------
do
  local t0 = time.monotonic()
  local e
  run(async(function()
    local task = spawn(async(function()
      local _ <close> = asyncio.timeout(0.05)
      sleep(10):await()
    end)())
    e = outcome(task)
  end)())
  t.ok(TimeoutError:is(e), "timeout() as a task's <close> variable ends in TimeoutError") 
  t.ok(not CancelledError:is(e), "... not in CancelledError")
  t.between(time.monotonic() - t0, 0.03, 5, "... after about the delay")

  local ok, err = pcall(run, async(function()
    local _ <close> = asyncio.timeout(0.02)
    sleep(10):await()
  end)())
  t.ok(not ok and TimeoutError:is(err), "timeout() in the main coroutine: run() raises TimeoutError")

  run(async(function()
    local ok2, e2 = pcall(function()
      local _ <close> = asyncio.timeout(0.02)
      sleep(10):await()
    end)
    t.ok(not ok2 and TimeoutError:is(e2), "timeout() inside pcall: TimeoutError")
    local inner = 0
    local ok3, e3 = pcall(function()
      local _ <close> = asyncio.timeout(0.02)
      local _ <close> = setmetatable({}, { __close = function(_, x)
        if CancelledError:is(x) then inner = inner + 1 end
      end })
      sleep(10):await()
    end)
    t.ok(not ok3 and TimeoutError:is(e3) and inner == 1,
         "closings inside the timeout's scope see the CancelledError, outside it TimeoutError")
    t.is(asyncio.current_task():cancelling(), 0, "the task is not left cancelling")
  end)())

  -- an outer cancellation stays a cancellation
  run(async(function()
    local task = spawn(async(function()
      local _ <close> = asyncio.timeout(10)
      sleep(10):await()
    end)())
    sleep(0):await()
    task:cancel()
    t.ok(CancelledError:is(outcome(task)), "a cancellation from outside a timeout stays CancelledError")
  end)())
end

-- TaskGroup -------------------------------------------------------------------------------
run(async(function()
  local log = {}
  local child = async(function(name)
    local _ <close> = closer(log, name)
    sleep(10):await()
  end)
  local parent = spawn(async(function()
    local tg <close> = asyncio.TaskGroup()
    tg:create_task(child("c1"))
    tg:create_task(child("c2"))
    sleep(0):await()
    error(ValueError("body"))
  end)())
  local e = outcome(parent)
  t.ok(asyncio.ExceptionGroup:is(e), "TaskGroup: a failing body gives an ExceptionGroup")
  t.ok(e and ValueError:is(e.exceptions[1]) and #e.exceptions == 1, "... holding the body's error")
  table.sort(log)
  t.is(table.concat(log, " "), "c1:cancelled c2:cancelled",
       "... after its tasks were cancelled and waited for")

  log = {}
  local parent2 = spawn(async(function()
    local tg <close> = asyncio.TaskGroup()
    tg:create_task(child("d1"))
    tg:create_task(child("d2"))
    sleep(10):await()
  end)())
  sleep(0):await(); sleep(0):await()
  parent2:cancel()
  e = outcome(parent2)
  t.ok(CancelledError:is(e) and parent2:cancelled(), "TaskGroup: a cancelled body ends cancelled")
  table.sort(log)
  t.is(table.concat(log, " "), "d1:cancelled d2:cancelled",
       "... after its tasks were cancelled and waited for")

  -- a lock taken in a group's task is released when the group is cancelled
  local lock = asyncio.Lock()
  local parent3 = spawn(async(function()
    local tg <close> = asyncio.TaskGroup()
    tg:create_task(async(function()
      local _ <close> = lock:acquire():await()
      sleep(10):await()
    end)())
    sleep(10):await()
  end)())
  sleep(0):await(); sleep(0):await()
  t.ok(lock:locked(), "a group's task holds a lock")
  parent3:cancel()
  outcome(parent3)
  t.ok(not lock:locked(), "... released when the group's parent is cancelled")
end)())

-- a storm of cancellations ---------------------------------------------------------------
run(async(function()
  local lock, sem, cond = asyncio.Lock(), asyncio.Semaphore(3), asyncio.Condition()
  local q = asyncio.Queue(2)
  local users = async(function(i)
    local which = i % 4
    if which == 0 then
      local _ <close> = lock:acquire():await()
      sleep(0.001 * (i % 7)):await()
    elseif which == 1 then
      local _ <close> = sem:acquire():await()
      sleep(0.001 * (i % 5)):await()
    elseif which == 2 then
      local _ <close> = cond:acquire():await()
      if i % 3 == 0 then cond:wait():await() else sleep(0.001):await() end
    else
      q:put(i):await()
      q:get():await()
    end
  end)
  local N = 400
  local tasks = {}
  for i = 1, N do tasks[i] = spawn(users(i)) end
  -- cancel every task at a different point of its life
  for round = 1, 20 do
    for i = round, N, 20 do tasks[i]:cancel() end
    if round % 2 == 0 then sleep(0):await() else sleep(0.001):await() end
  end
  local ncancelled = 0
  for i = 1, N do
    local e = outcome(tasks[i])
    if CancelledError:is(e) then ncancelled = ncancelled + 1 end
  end
  t.ok(ncancelled > N / 2, ("storm: %d of %d tasks ended cancelled"):format(ncancelled, N))
  t.ok(not lock:locked(), "storm: the Lock is free")
  t.is(sem._value, 3, "storm: the Semaphore has all its units")
  t.ok(not cond:locked(), "storm: the Condition's lock is free")
  local ok = pcall(function()
    asyncio.wait_for(lock:acquire(), 0.5):await()
    for _ = 1, 3 do asyncio.wait_for(sem:acquire(), 0.5):await() end
    asyncio.wait_for(cond:acquire(), 0.5):await()
  end)
  t.ok(ok, "storm: Lock, every unit of the Semaphore and the Condition acquirable at once")
  while not q:empty() do q:get_nowait() end
  local ok2 = pcall(function()
    for i = 1, 2 do asyncio.wait_for(q:put(i), 0.5):await() end
    for _ = 1, 2 do asyncio.wait_for(q:get(), 0.5):await() end
  end)
  t.ok(ok2 and q:empty(), "storm: the Queue still takes and gives items")
end)())

-- bad delays ---------------------------------------------------------------------------
do
  local loop = asyncio.new_event_loop()
  local nan = 0 / 0
  t.raises(function() loop:call_later(nan, print) end, ValueError, "call_later(NaN): ValueError")
  t.raises(function() loop:call_at(nan, print) end, ValueError, "call_at(NaN): ValueError")
  t.raises(function() loop:call_later("1", print) end, TypeError, "call_later('1'): TypeError")
  t.raises(function() loop:call_later(nil, print) end, TypeError, "call_later(nil): TypeError")
  -- whatever was accepted, later timers still fire: a guard thread wakes
  -- the loop if they do not
  pcall(loop.call_later, loop, nan, print)
  loop:call_later(math.huge, print)
  local fired = loop:create_future()
  loop:call_later(0.01, function() if not fired:done() then fired:set_result("fired") end end)
  local guard = threading.Timer(5, function()
    loop:call_soon_threadsafe(function()
      if not fired:done() then fired:set_result("stuck") end
    end)
  end)
  guard:start()
  t.is(loop:run_until_complete(fired), "fired", "a later timer still fires (inf accepted)")
  guard:cancel()
  loop:close()

  run(async(function()
    t.raises(function() sleep(nan) end, ValueError, "sleep(NaN): ValueError")
    t.raises(function() sleep("1") end, TypeError, "sleep('1'): TypeError")
    t.raises(function() asyncio.timeout(nan) end, ValueError, "timeout(NaN): ValueError")
    t.raises(function() asyncio.timeout("x") end, TypeError, "timeout('x'): TypeError")
    t.raises(function() asyncio.timeout_at(nan) end, ValueError, "timeout_at(NaN): ValueError")
    local tm <close> = asyncio.timeout(nil)
    t.raises(function() tm:reschedule(nan) end, ValueError, "Timeout:reschedule(NaN): ValueError")
    t.raises(function() asyncio.wait_for(sleep(0), nan):await() end, ValueError,
             "wait_for(aw, NaN): ValueError")
    local f = asyncio.get_running_loop():create_future()
    t.raises(function() asyncio.wait({f}, {timeout = nan}):await() end, ValueError,
             "wait(fs, {timeout = NaN}): ValueError")
    t.raises(function() asyncio.as_completed({f}, {timeout = nan}) end, ValueError,
             "as_completed(fs, {timeout = NaN}): ValueError")
    f:cancel()
    local t0 = time.monotonic()
    sleep(0.01):await()
    t.between(time.monotonic() - t0, 0.005, 5, "timers still fire after the refused delays")
  end)())
end

t.done_testing()
