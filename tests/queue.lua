#!/usr/bin/env gilua
-- queue: Queue, LifoQueue, PriorityQueue, SimpleQueue; ordering, nil items,
-- maxsize, Empty/Full on timeouts and non-blocking calls, task_done/join,
-- shutdown (3.13), waits that release the GIL, and a 4x4 stress run.
local t = require "tap"
local queue = require "queue"
local threading = require "threading"
local time = require "time"
local util = require "support.util"

local function drain(q)
  local out = {}
  while not q:empty() do out[#out + 1] = q:get() end
  return table.concat(out, " ")
end

-- Exceptions --------------------------------------------------------------------------------
do
  t.ok(Exception:is(queue.Empty()), "queue.Empty is an Exception")
  t.ok(Exception:is(queue.Full()), "queue.Full is an Exception")
  t.ok(Exception:is(queue.ShutDown()), "queue.ShutDown is an Exception")
  t.is(tostring(queue.Empty()), "queue.Empty", "tostring(queue.Empty())")
end

-- FIFO, LIFO, priority order ------------------------------------------------------------------
do
  local q = queue.Queue()
  t.ok(queue.Queue:is(q), "queue.Queue() is a Queue instance")
  t.is(q.maxsize, 0, "default maxsize is 0 (unbounded)")
  t.is(q:empty(), true, "a new queue is empty")
  t.is(q:full(), false, "an unbounded queue is never full")
  for i = 1, 5 do q:put(i) end
  t.is(q:qsize(), 5, "qsize after 5 puts")
  t.is(drain(q), "1 2 3 4 5", "Queue is first in, first out")

  local l = queue.LifoQueue()
  t.ok(queue.Queue:is(l), "LifoQueue is a Queue")
  for i = 1, 5 do l:put(i) end
  t.is(drain(l), "5 4 3 2 1", "LifoQueue is last in, first out")

  local p = queue.PriorityQueue()
  for _, v in ipairs { 5, 3, 9, 1, 7, 2, 8, 6, 4, 0 } do p:put(v) end
  t.is(drain(p), "0 1 2 3 4 5 6 7 8 9", "PriorityQueue gives the smallest first")
  for _, v in ipairs { "pear", "apple", "fig" } do p:put(v) end
  t.is(drain(p), "apple fig pear", "strings are compared with <")

  for _, v in ipairs { {2, "b"}, {1, "a"}, {3, "e"}, {2, "c"}, {1, "d"}, {0, "z"} } do p:put(v) end
  local got = {}
  while not p:empty() do local x = p:get(); got[#got + 1] = x[1] .. x[2] end
  t.is(table.concat(got, " "), "0z 1a 1d 2b 2c 3e",
       "{priority, value} pairs: by priority, then in insertion order")

  local V = {}
  V.__lt = function(a, b) return a.v < b.v end
  for _, v in ipairs { 3, 1, 2 } do p:put(setmetatable({ v = v }, V)) end
  t.is(p:get().v .. p:get().v .. p:get().v, "123", "objects with __lt are ordered by it")
end

-- many items: ring buffer wrap-around and growth, heap against table.sort ------------------------
do
  local q = queue.Queue()
  local expect, ok = 1, true
  local nextv = 1
  for round = 1, 200 do
    for _ = 1, round % 37 + 1 do q:put(nextv); nextv = nextv + 1 end
    for _ = 1, round % 23 + 1 do
      if q:empty() then break end
      local v = q:get()
      if v ~= expect then ok = false end
      expect = expect + 1
    end
  end
  while not q:empty() do
    if q:get() ~= expect then ok = false end
    expect = expect + 1
  end
  t.ok(ok and expect == nextv, "FIFO order kept through wrap-around and growth (" .. (nextv - 1) .. " items)")

  math.randomseed(42)
  local p, all = queue.PriorityQueue(), {}
  local sorted_ok = true
  for round = 1, 60 do
    for _ = 1, 20 do
      local v = math.random(1, 1000)
      p:put(v)
      all[#all + 1] = v
    end
    table.sort(all)
    for _ = 1, 10 do
      local v = p:get()
      if v ~= table.remove(all, 1) then sorted_ok = false end
    end
  end
  table.sort(all)
  for i = 1, #all do if p:get() ~= all[i] then sorted_ok = false end end
  t.ok(sorted_ok and p:empty(), "PriorityQueue agrees with table.sort on 1200 random items")
end

-- the put/get path allocates nothing once the slots exist ---------------------------------------
do
  for _, name in ipairs { "Queue", "LifoQueue", "PriorityQueue", "SimpleQueue" } do
    local q = queue[name]()
    local nils = name ~= "PriorityQueue"  -- nil and numbers do not compare
    for i = 1, 64 do q:put(i) end
    for _ = 1, 64 do q:get() end
    collectgarbage()
    collectgarbage("stop")
    local before = collectgarbage("count")
    for i = 1, 20000 do
      q:put(i)
      q:put((i % 7 ~= 0 or not nils) and i or nil)
      q:get()
      q:get()
    end
    local grew = (collectgarbage("count") - before) * 1024
    collectgarbage("restart")
    t.is(grew, 0, name .. ": 40,000 puts and gets allocate no memory")
  end
end

-- incomparable items: an error, and the queue is left as it was ------------------------------------
do
  local p = queue.PriorityQueue()
  p:put(1); p:put(2)
  t.raises(function() p:put("x") end, "compare", "a string among numbers: comparison error")
  t.is(p:qsize(), 2, "... and the queue still holds its 2 items")
  t.is(p:get() + p:get(), 3, "... which come out fine")
end

-- nil is an item -------------------------------------------------------------------------------
do
  local q = queue.Queue()
  q:put(1); q:put(nil); q:put(3); q:put(nil)
  t.is(q:qsize(), 4, "nil items count in qsize")
  local a, b, c, d = q:get(), q:get(), q:get(), q:get()
  t.ok(a == 1 and b == nil and c == 3 and d == nil, "nil items come out in their place")
  q:put(nil)
  t.is(q:qsize(), 1, "put(nil) enqueues an item")
  t.is(select("#", q:get()), 1, "get returns exactly one value, nil here")
  local l = queue.LifoQueue()
  l:put(nil); l:put(2)
  t.is(l:get(), 2, "LifoQueue with a nil item: top first")
  t.is(l:get(), nil, "... then the nil")
  t.is(l:empty(), true, "... and it is empty")
  t.raises(function() q:put() end, TypeError, "put() with no item at all: TypeError")
  local tbl = { 1, 2 }
  q:put(tbl)
  t.is(q:get(), tbl, "a plain table item is not taken for options")
end

-- maxsize, Full, Empty --------------------------------------------------------------------------
do
  local q = queue.Queue(2)
  t.is(q.maxsize, 2, "Queue(2).maxsize")
  t.is(queue.Queue{maxsize = 3}.maxsize, 3, "Queue{maxsize = 3}")
  t.raises(function() queue.Queue("x") end, TypeError, "Queue('x'): TypeError")
  q:put("a"); q:put("b")
  t.is(q:full(), true, "full() with maxsize items")
  t.raises(function() q:put_nowait("c") end, queue.Full, "put_nowait on a full queue: Full")
  t.raises(function() q:put("c", false) end, queue.Full, "put(item, false) on a full queue: Full")
  local dt = util.timed(pcall, q.put, q, "c", true, 0.2)
  t.between(dt, 0.17, 2, "put(item, true, 0.2) on a full queue waits about 0.2 s")
  local err = select(2, pcall(q.put, q, "c", { timeout = 0.1 }))
  t.ok(queue.Full:is(err), "put(item, {timeout = 0.1}) raises Full")
  t.is(q:qsize(), 2, "nothing was added")
  t.is(q:get_nowait(), "a", "get_nowait")
  t.is(q:get(false), "b", "get(false)")
  t.raises(function() q:get_nowait() end, queue.Empty, "get_nowait on an empty queue: Empty")
  t.raises(function() q:get(false) end, queue.Empty, "get(false) on an empty queue: Empty")
  local dt2, ok, e = util.timed(pcall, q.get, q, true, 0.2)
  t.ok(not ok and queue.Empty:is(e), "get(true, 0.2) on an empty queue raises Empty")
  t.between(dt2, 0.17, 2, "... after about 0.2 s")
  dt2, ok, e = util.timed(pcall, q.get, q, { timeout = 0.1 })
  t.ok(not ok and queue.Empty:is(e), "get{timeout = 0.1} raises Empty")
  t.between(dt2, 0.08, 2, "... after about 0.1 s")
  dt2, ok, e = util.timed(pcall, q.get, q, true, 0)
  t.ok(not ok and queue.Empty:is(e) and dt2 < 0.1, "get(true, 0) raises Empty at once")
  t.raises(function() q:get(true, -1) end, ValueError, "a negative timeout: ValueError")
  t.raises(function() q:get(true, "x") end, TypeError, "a timeout that is not a number: TypeError")
  t.raises(function() q.get() end, "queue method", "q.get() without self: a clear error")
end

-- blocking waits release the GIL and are woken by other threads ------------------------------------
do
  local q = queue.Queue()
  local th = util.go(function() time.sleep(0.2); q:put("late") end)
  local ticks, dt, v = util.ticks_during(q.get, q)
  t.is(v, "late", "get() is woken by a put from another thread")
  t.between(dt, 0.15, 2, "... after the producer's sleep")
  t.ok(ticks >= 5, "other threads ran while get() waited (" .. ticks .. " ticks)")
  th:join()

  local b = queue.Queue(1)
  b:put(1)
  th = util.go(function() time.sleep(0.2); b:get() end)
  ticks, dt = util.ticks_during(b.put, b, 2)
  t.between(dt, 0.15, 2, "put() on a full queue waits until a get in another thread")
  t.ok(ticks >= 5, "other threads ran while put() waited (" .. ticks .. " ticks)")
  t.is(b:get(), 2, "the item put after the wait is there")
  th:join()

  th = util.go(function() time.sleep(0.1); q:put(nil) end)
  local ok, got = pcall(q.get, q, true, 5)
  t.ok(ok and got == nil, "a nil item wakes a timed get, which returns nil")
  th:join()
end

-- task_done and join --------------------------------------------------------------------------------
do
  local q = queue.Queue()
  t.raises(function() q:task_done() end, ValueError, "task_done without a put: ValueError")
  local done = {}
  local worker = util.go(function()
    while true do
      local item = q:get()
      if item == nil then q:task_done(); break end
      time.sleep(0.02)
      done[#done + 1] = item
      q:task_done()
    end
  end)
  for i = 1, 5 do q:put(i) end
  local dt = util.timed(q.join, q)
  t.is(#done, 5, "join() returns once the 5 items were processed")
  t.ok(dt >= 0.08, "... which took the worker's time")
  q:put(nil)
  q:join()
  worker:join()
  t.raises(function() q:task_done() end, "too many times", "one task_done too many: ValueError")
  local empty = queue.Queue()
  dt = util.timed(empty.join, empty)
  t.ok(dt < 0.1, "join on a queue without unfinished tasks returns at once")
end

-- shutdown --------------------------------------------------------------------------------------------
do
  local q = queue.Queue()
  q:put(1); q:put(2)
  t.is(q.is_shutdown, false, "is_shutdown is false at first")
  q:shutdown()
  t.is(q.is_shutdown, true, "is_shutdown after shutdown()")
  t.raises(function() q:put(3) end, queue.ShutDown, "put after shutdown: ShutDown")
  t.is(q:get(), 1, "get after shutdown still drains the items")
  t.is(q:get(), 2, "... in order")
  t.raises(function() q:get() end, queue.ShutDown, "get on a shut-down empty queue: ShutDown")
  t.raises(function() q:get_nowait() end, queue.ShutDown, "get_nowait too")

  local w = queue.Queue()
  local err
  local th = util.go(function() err = select(2, pcall(w.get, w)) end)
  time.sleep(0.1)
  w:shutdown()
  th:join(5)
  t.ok(queue.ShutDown:is(err), "a blocked get is woken by shutdown() and raises ShutDown")

  local f = queue.Queue(1)
  f:put(0)
  th = util.go(function() err = select(2, pcall(f.put, f, 1)) end)
  time.sleep(0.1)
  f:shutdown()
  th:join(5)
  t.ok(queue.ShutDown:is(err), "a blocked put is woken by shutdown() and raises ShutDown")

  local i = queue.Queue()
  for k = 1, 3 do i:put(k) end
  local joined = false
  th = util.go(function() i:join(); joined = true end)
  time.sleep(0.05)
  i:shutdown(true)
  th:join(5)
  t.is(i:qsize(), 0, "shutdown(true) drops the items")
  t.ok(joined, "... counts them as done, which releases join()")
  t.raises(function() i:get() end, queue.ShutDown, "... and get raises ShutDown")
  local o = queue.Queue()
  o:put(1)
  o:shutdown{ immediate = true }
  t.is(o:qsize(), 0, "shutdown{immediate = true}")
end

-- SimpleQueue ------------------------------------------------------------------------------------------
do
  local s = queue.SimpleQueue()
  t.ok(queue.SimpleQueue:is(s), "SimpleQueue()")
  s:put(1); s:put(nil); s:put(3, false, 1)
  t.is(s:qsize(), 3, "SimpleQueue qsize, block and timeout of put ignored")
  t.ok(s:get() == 1 and s:get() == nil and s:get_nowait() == 3, "SimpleQueue is FIFO, nil included")
  t.is(s:empty(), true, "empty()")
  t.raises(function() s:get(true, 0.05) end, queue.Empty, "SimpleQueue get with timeout: Empty")
  t.is(s.task_done, nil, "SimpleQueue has no task_done")
end

-- subclassing --------------------------------------------------------------------------------------------
do
  local Counting = queue.Queue:extend("CountingQueue")
  function Counting:init(...)
    queue.Queue.init(self, ...)
    self.puts = 0
  end
  function Counting:put(item, ...)
    self.puts = self.puts + 1
    return queue.Queue.put(self, item, ...)
  end
  local c = Counting(3)
  c:put("x"); c:put("y")
  t.is(c.puts, 2, "a subclass overrides put and calls Queue.put")
  t.is(c:get(), "x", "... and the queue works")
  t.ok(queue.Queue:is(c), "... and is a Queue")
end

-- 4 producers / 4 consumers through a small queue: nothing lost, nothing twice -----------------------------
do
  local q = queue.Queue(8)
  local PER, NP, NC = 5000, 4, 4
  local seen, dup, counts = {}, 0, {}
  local producers, consumers = {}, {}
  for c = 1, NC do
    counts[c] = 0
    consumers[c] = util.go(function()
      while true do
        local item = q:get()
        if item == nil then q:task_done(); return end
        if seen[item] then dup = dup + 1 end
        seen[item] = true
        counts[c] = counts[c] + 1
        q:task_done()
      end
    end)
  end
  for p = 1, NP do
    producers[p] = util.go(function()
      for i = 1, PER do q:put(p * 1000000 + i) end
    end)
  end
  for p = 1, NP do producers[p]:join() end
  q:join()
  for _ = 1, NC do q:put(nil) end
  for c = 1, NC do consumers[c]:join() end
  local total, missing = 0, 0
  for c = 1, NC do total = total + counts[c] end
  for p = 1, NP do
    for i = 1, PER do if not seen[p * 1000000 + i] then missing = missing + 1 end end
  end
  t.is(total, NP * PER, "4x4 stress: every item was received")
  t.is(missing, 0, "4x4 stress: none lost")
  t.is(dup, 0, "4x4 stress: none received twice")
  local busy = 0
  for c = 1, NC do if counts[c] > 0 then busy = busy + 1 end end
  t.ok(busy >= 2, "4x4 stress: the work was shared (" .. busy .. " consumers got items)")
  t.is(q:qsize(), 0, "4x4 stress: the queue is empty at the end")
end

t.done_testing()
