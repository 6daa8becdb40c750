#!/usr/bin/env gilua
-- threading.Condition: wait, wait_for, notify(n), notify_all, misuse errors,
-- timeouts, and waits that release the GIL.
local t = require "tap"
local threading = require "threading"
local time = require "time"
local util = require "support.util"

-- wait(timeout) with nobody notifying ------------------------------------------------
do
  local c = threading.Condition()
  t.is(c:acquire(), c, "acquire returns the condition")
  local ticks, dt, r = util.ticks_during(c.wait, c, 0.3)
  t.is(r, false, "wait(0.3) with no notify returns false")
  t.between(dt, 0.27, 2, "... after about its timeout")
  t.ok(ticks >= 5, "another thread ran during the wait (" .. ticks .. " ticks)")
  c:release()
end

-- misuse ----------------------------------------------------------------------------------
do
  local c = threading.Condition()
  t.raises(function() c:wait(0.01) end, RuntimeError, "wait without the lock: RuntimeError")
  t.raises(function() c:notify() end, RuntimeError, "notify without the lock: RuntimeError")
  t.raises(function() c:notify_all() end, RuntimeError, "notify_all without the lock: RuntimeError")
  local c2 = threading.Condition()
  c2:acquire()
  local err
  local th = threading.Thread{ target = function()
    local ok, e = pcall(c2.notify, c2)
    if not ok then err = e end
  end }
  th:start(); th:join()
  t.ok(RuntimeError:is(err), "notify by a thread that does not hold the lock: RuntimeError")
  c2:release()
end

-- wait is woken by notify, and gets the lock back --------------------------------------------
do
  local c = threading.Condition()
  local ready = false
  local th = threading.Thread{ target = function()
    time.sleep(0.1)
    c:with(function() ready = true; c:notify() end)
  end }
  c:acquire()
  th:start()
  local dt, r = util.timed(c.wait, c, 5)
  t.is(r, true, "wait returns true when notified")
  t.ok(dt < 2, "... soon after the notify")
  t.ok(ready, "the notifier's change is visible")
  t.ok(c:_is_owned(), "the lock is held again after wait")
  c:release()
  th:join()
end

-- wait re-acquires an RLock at its previous depth ------------------------------------------------
do
  local rl = threading.RLock()
  local c = threading.Condition(rl)
  rl:acquire(); rl:acquire()
  local th = threading.Thread{ target = function()
    time.sleep(0.05)
    c:with(function() c:notify() end)
  end }
  th:start()
  t.is(c:wait(5), true, "wait with an RLock held twice is notified (the lock was fully released)")
  rl:release(); rl:release()
  local freed
  local th2 = threading.Thread{ target = function()
    freed = rl:acquire(false)
    if freed then rl:release() end
  end }
  th2:start(); th2:join(); th:join()
  t.is(freed, rl, "the RLock came back at depth 2: two releases freed it")
end

-- notify(n) wakes n waiters, notify_all the rest -----------------------------------------------------
do
  local c = threading.Condition(threading.Lock())
  local waiting, woken = 0, 0
  local ths = {}
  for i = 1, 5 do
    ths[i] = threading.Thread{ target = function()
      c:with(function()
        waiting = waiting + 1
        if c:wait(5) then woken = woken + 1 end
      end)
    end }
    ths[i]:start()
  end
  t.ok(util.wait_until(function() return waiting == 5 end), "five threads are waiting")
  c:with(function() c:notify(2) end)
  time.sleep(0.2)
  t.is(woken, 2, "notify(2) wakes exactly two waiters")
  c:with(function() c:notify() end)
  time.sleep(0.2)
  t.is(woken, 3, "notify() wakes exactly one more")
  c:with(function() c:notify_all() end)
  for i = 1, 5 do ths[i]:join() end
  t.is(woken, 5, "notify_all() wakes the rest")
  t.lives(function() c:with(function() c:notify() end) end,
          "notify with nobody waiting is harmless")
end

-- wait_for -----------------------------------------------------------------------------------------------
do
  local c = threading.Condition()
  local items = {}
  local producer = threading.Thread{ target = function()
    for i = 1, 3 do
      time.sleep(0.03)
      c:with(function() items[#items + 1] = i; c:notify_all() end)
    end
  end }
  producer:start()
  local r = c:with(function()
    return c:wait_for(function() return #items >= 3 and #items end, 5)
  end)
  t.is(r, 3, "wait_for returns the predicate's (truthy) value")
  producer:join()

  c:acquire()
  local dt, r2 = util.timed(c.wait_for, c, function() return false end, 0.2)
  t.is(r2, false, "wait_for returns the predicate's last value on timeout")
  t.between(dt, 0.17, 2, "... after about the timeout")
  local calls = 0
  t.is(c:wait_for(function() calls = calls + 1; return "ready" end), "ready",
       "wait_for with a true predicate returns at once")
  t.is(calls, 1, "... having called the predicate once")
  c:release()
  t.raises(function() c:with(function() c:wait_for(42) end) end, TypeError,
           "wait_for with a non-callable predicate: TypeError")
end

-- <close> ------------------------------------------------------------------------------------------------
do
  local lk = threading.Lock()
  local c = threading.Condition(lk)
  do
    local _ <close> = c:acquire()
    t.is(lk:locked(), true, "Condition <close>: the underlying lock is held")
  end
  t.is(lk:locked(), false, "Condition <close>: released at the end of the scope")
end

-- producer/consumer with a Condition ---------------------------------------------------------------------
do
  local c = threading.Condition()
  local queue, consumed, done = {}, {}, false
  local consumer = threading.Thread{ target = function()
    while true do
      local item = c:with(function()
        c:wait_for(function() return #queue > 0 or done end)
        return table.remove(queue, 1)
      end)
      if item == nil then break end
      consumed[#consumed + 1] = item
    end
  end }
  consumer:start()
  for i = 1, 50 do
    c:with(function() queue[#queue + 1] = i; c:notify() end)
    if i % 10 == 0 then time.sleep(0.005) end
  end
  c:with(function() done = true; c:notify() end)
  consumer:join(5)
  t.is(consumer:is_alive(), false, "consumer finished")
  local inorder = #consumed == 50
  for i = 1, #consumed do inorder = inorder and consumed[i] == i end
  t.ok(inorder, "the consumer got the 50 items in order (" .. #consumed .. ")")
end

-- acquire and release pass arguments and results through to the lock ---------------
do
  local c = threading.Condition(threading.Lock())
  t.is(c:acquire(), c, "acquire() returns the Condition")
  t.is(c:acquire(false), false, "acquire(false) on a held lock returns false")
  t.is(c:acquire{blocking = false}, false, "acquire{blocking = false} too")
  c:release()
  t.is(c:acquire(true, 0.5), c, "acquire(true, 0.5) on a free lock returns the Condition")
  c:release()
  t.raises(function() c:release() end, RuntimeError, "releasing it again: RuntimeError")
  -- any lock-like object will do, as in Python
  local calls = {}
  local fake = setmetatable({      -- an object (a plain table would be options)
    acquire = function(self, ...) calls[#calls + 1] = select("#", ...); return true end,
    release = function() calls[#calls + 1] = "release" end,
  }, {})
  local cf = threading.Condition(fake)
  t.is(cf:acquire(), cf, "a Lua lock-like object: acquire() gives the Condition")
  t.is(cf:acquire(true, 1), cf, "... acquire(true, 1) too")
  cf:release()
  do local _ <close> = cf:acquire() end
  t.is(table.concat(calls, ","), "0,2,release,0,release",
       "... its own methods got the calls, with their arguments")
  fake.acquire = function() return false end
  t.is(cf:acquire(false), false, "... and its false result")
  t.raises(function() threading.Condition.acquire(42) end, "table expected",
           "Condition.acquire on a number: an error")
end

-- Python fails at once on a lock that is not one (AttributeError there).
t.raises(function() threading.Condition(5) end, TypeError,
         "Condition(5): TypeError at once, not at the first use")

t.done_testing()
