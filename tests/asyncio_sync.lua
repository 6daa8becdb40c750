#!/usr/bin/env gilua
-- asyncio's synchronisation primitives and queues: Lock (with <close>),
-- Event, Condition, Semaphore, BoundedSemaphore, Barrier, Queue,
-- LifoQueue, PriorityQueue, QueueEmpty/QueueFull, join/task_done, and
-- cancellation while waiting on them.
local t = require "tap"
local asyncio = require "asyncio"

local async, run, sleep = asyncio.async, asyncio.run, asyncio.sleep
local spawn = asyncio.create_task

-- Lock -------------------------------------------------------------------------------
run(async(function()
  local lock = asyncio.Lock()
  local log, inside, max_inside = {}, 0, 0
  local worker = async(function(name)
    local _ <close> = lock:acquire():await()
    inside = inside + 1
    if inside > max_inside then max_inside = inside end
    log[#log + 1] = name
    sleep(0.01):await()
    inside = inside - 1
  end)
  asyncio.gather(worker("a"), worker("b"), worker("c")):await()
  t.is(max_inside, 1, "Lock: one task at a time")
  t.is(table.concat(log), "abc", "Lock: waiters served in order")
  t.ok(not lock:locked(), "<close> released it")
  t.raises(function() lock:release() end, RuntimeError, "releasing an unlocked Lock")

  -- a cancelled waiter does not keep the lock
  lock:acquire():await()
  local waiter = spawn(async(function() lock:acquire():await(); lock:release() end)())
  sleep(0):await()
  waiter:cancel()
  pcall(waiter.await, waiter)
  lock:release()
  t.ok(not lock:locked(), "a waiter cancelled while waiting leaves the lock free")
  t.ok(lock:acquire():await() == lock, "awaiting acquire returns the lock")
  lock:release()

  -- a task arriving just after a release does not pass the woken waiter
  local holders, most = 0, 0
  local function enter() holders = holders + 1; if holders > most then most = holders end end
  lock:acquire():await(); enter()
  local b = spawn(async(function()
    lock:acquire():await(); enter(); sleep(0):await(); holders = holders - 1; lock:release()
  end)())
  sleep(0):await()                        -- b waits
  holders = holders - 1; lock:release()   -- b is woken, not yet run
  lock:acquire():await(); enter()         -- must wait for b's turn
  sleep(0):await(); sleep(0):await()
  holders = holders - 1; lock:release()
  b:await()
  t.is(most, 1, "Lock: a task acquiring right after a release waits for the woken waiter")
end)())

-- Event -------------------------------------------------------------------------------
run(async(function()
  local ev = asyncio.Event()
  local woke = 0
  local w = async(function() ev:wait():await(); woke = woke + 1 end)
  local ts = {spawn(w()), spawn(w()), spawn(w())}
  sleep(0.01):await()
  t.is(woke, 0, "Event: waiters wait")
  ev:set()
  asyncio.gather(table.unpack(ts)):await()
  t.is(woke, 3, "set() wakes them all")
  t.ok(ev:is_set() and ev:wait():await(), "wait() on a set event returns at once")
  ev:clear()
  t.ok(not ev:is_set(), "clear()")
  t.raises(function() asyncio.wait_for(ev:wait(), 0.02):await() end, TimeoutError,
           "wait_for(ev:wait(), timeout)")
end)())

-- Condition ---------------------------------------------------------------------------
run(async(function()
  local cond = asyncio.Condition()
  local items, got = {}, {}
  local consumer = async(function()
    local _ <close> = cond:acquire():await()
    cond:wait_for(function() return #items > 0 end):await()
    got[#got + 1] = table.remove(items, 1)
  end)
  local c1, c2 = spawn(consumer()), spawn(consumer())
  sleep(0.01):await()
  do
    local _ <close> = cond:acquire():await()
    items[#items + 1] = "x"
    cond:notify()
  end
  sleep(0.01):await()
  t.is(#got, 1, "Condition: notify() wakes one")
  do
    local _ <close> = cond:acquire():await()
    items[#items + 1] = "y"
    cond:notify_all()
  end
  asyncio.gather(c1, c2):await()
  t.is(table.concat(got), "xy", "notify_all() and wait_for")
  t.raises(function() cond:notify() end, RuntimeError, "notify without the lock")
end)())

-- Semaphore, BoundedSemaphore ------------------------------------------------------------
run(async(function()
  local sem = asyncio.Semaphore(2)
  local inside, max_inside = 0, 0
  local w = async(function()
    local _ <close> = (function() sem:acquire():await(); return sem end)()
    inside = inside + 1
    if inside > max_inside then max_inside = inside end
    sleep(0.01):await()
    inside = inside - 1
  end)
  local ts = {}
  for i = 1, 6 do ts[i] = w() end
  asyncio.gather(table.unpack(ts)):await()
  t.is(max_inside, 2, "Semaphore(2): two at a time")
  local b = asyncio.BoundedSemaphore(1)
  b:acquire():await()
  b:release()
  t.raises(function() b:release() end, ValueError, "BoundedSemaphore over-released")
end)())

-- Barrier --------------------------------------------------------------------------------
run(async(function()
  local bar = asyncio.Barrier(3)
  local idx = {}
  local w = async(function() local i = bar:wait():await(); idx[#idx + 1] = i end)
  asyncio.gather(w(), w(), w()):await()
  table.sort(idx)
  t.is(table.concat(idx, ","), "0,1,2", "Barrier: indices 0..parties-1")
  local lone = spawn(w())
  sleep(0.01):await()
  t.is(bar.n_waiting, 1, "n_waiting")
  bar:abort()
  t.raises(function() lone:await() end, asyncio.BrokenBarrierError, "abort() breaks the waiters")
  t.ok(bar.broken, "broken")
end)())

-- Queues -----------------------------------------------------------------------------------
run(async(function()
  local q = asyncio.Queue(2)
  q:put_nowait(1)
  q:put(nil):await()
  t.ok(q:full() and q:qsize() == 2, "Queue(2) full after 2 puts")
  t.raises(function() q:put_nowait(3) end, asyncio.QueueFull, "QueueFull")
  t.is(q:get_nowait(), 1, "FIFO")
  t.is(select("#", q:get():await()), 1, "get() of a nil item returns nil")
  t.raises(function() q:get_nowait() end, asyncio.QueueEmpty, "QueueEmpty")

  -- producer / consumer with a bounded queue
  local got = {}
  local producer = async(function()
    for i = 1, 20 do q:put(i):await() end
    q:put(nil):await()
  end)
  local consumer = async(function()
    while true do
      local x = q:get():await()
      q:task_done()
      if x == nil then break end
      got[#got + 1] = x
    end
  end)
  asyncio.gather(producer(), consumer()):await()
  t.is(#got, 20, "producer/consumer through Queue(2): nothing lost")
  t.is(got[20], 20, "... in order")

  local jq = asyncio.Queue()
  for i = 1, 3 do jq:put_nowait(i) end
  local joined = false
  local j = spawn(async(function() jq:join():await(); joined = true end)())
  sleep(0):await()
  for _ = 1, 3 do jq:get():await(); jq:task_done() end
  j:await()
  t.ok(joined, "join() waits for every task_done()")
  t.raises(function() jq:task_done() end, ValueError, "task_done too many times")

  local lq = asyncio.LifoQueue()
  for i = 1, 3 do lq:put_nowait(i) end
  t.is(lq:get_nowait() .. lq:get_nowait() .. lq:get_nowait(), "321", "LifoQueue")

  local pq = asyncio.PriorityQueue()
  pq:put_nowait({3, "c"}); pq:put_nowait({1, "a"}); pq:put_nowait({2, "b"}); pq:put_nowait({1, "a2"})
  local order = {}
  while not pq:empty() do order[#order + 1] = pq:get():await()[2] end
  t.is(table.concat(order, ","), "a,a2,b,c", "PriorityQueue: by priority, then insertion")

  -- a getter cancelled while waiting
  local eq = asyncio.Queue()
  local g = spawn(eq:get())
  sleep(0):await()
  g:cancel()
  pcall(g.await, g)
  eq:put_nowait("x")
  t.is(eq:get():await(), "x", "a cancelled getter takes nothing")
  t.raises(function() asyncio.wait_for(eq:get(), 0.02):await() end, TimeoutError,
           "wait_for(q:get(), timeout)")
end)())

-- TaskGroup ---------------------------------------------------------------------------------
run(async(function()
  local got = {}
  do
    local tg <close> = asyncio.TaskGroup()
    for i = 1, 3 do
      tg:create_task(async(function() sleep(0.01 * i):await(); got[#got + 1] = i end)())
    end
  end
  t.is(table.concat(got, ","), "1,2,3", "TaskGroup: leaving the scope waits for every task")

  local cancelled = false
  local ok, e = pcall(function()
    local tg <close> = asyncio.TaskGroup()
    tg:create_task(async(function() sleep(0.01):await(); error(ValueError("one")) end)())
    tg:create_task(async(function()
      local ok2, e2 = pcall(function() sleep(5):await() end)
      cancelled = asyncio.CancelledError:is(e2)
      error(e2, 0)
    end)())
    sleep(5):await()                 -- the body is cancelled by the failure
  end)
  t.ok(not ok and asyncio.ExceptionGroup:is(e), "a failing task: ExceptionGroup")
  t.ok(e and #e.exceptions == 1 and ValueError:is(e.exceptions[1]), "... holding the error")
  t.ok(cancelled, "... and the other tasks were cancelled")
  t.is(asyncio.current_task():cancelling(), 0, "the group's own cancellation of the body is undone")
end)())

t.done_testing()
