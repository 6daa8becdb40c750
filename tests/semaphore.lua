#!/usr/bin/env gilua
-- threading.Semaphore and BoundedSemaphore.
local t = require "tap"
local threading = require "threading"
local time = require "time"
local util = require "support.util"

do
  local s = threading.Semaphore(3)
  t.is(s:acquire(), s, "acquire returns the semaphore")
  t.is(s:acquire(false), s, "second acquire(false)")
  t.is(s:acquire{blocking = false}, s, "third acquire{blocking = false}")
  t.is(s:acquire(false), false, "a fourth non-blocking acquire fails")
  local ticks, dt, r = util.ticks_during(s.acquire, s, true, 0.3)
  t.is(r, false, "acquire(true, 0.3) on an exhausted semaphore returns false")
  t.between(dt, 0.27, 2, "... after about its timeout")
  t.ok(ticks >= 5, "another thread ran while acquire was blocked (" .. ticks .. " ticks)")
  t.raises(function() s:acquire(false, 1) end, ValueError,
           "acquire(false, 1): ValueError")
  s:release()
  t.is(s:acquire(false), s, "after a release one acquire succeeds")
  s:release(2)
  t.is(s:acquire(false), s, "release(2) gave two back (1)")
  t.is(s:acquire(false), s, "release(2) gave two back (2)")
  t.is(s:acquire(false), false, "... and no more")
  t.raises(function() s:release(0) end, ValueError, "release(0): ValueError")
end

t.raises(function() threading.Semaphore(-1) end, ValueError, "Semaphore(-1): ValueError")
do
  local s = threading.Semaphore()
  t.is(s:acquire(false), s, "Semaphore() has value 1")
  t.is(s:acquire(false), false, "... and only 1")
  local s0 = threading.Semaphore(0)
  t.is(s0:acquire(false), false, "Semaphore(0) starts exhausted")
  local th = threading.Thread{ target = function() time.sleep(0.1); s0:release() end }
  th:start()
  local dt, r = util.timed(s0.acquire, s0, true, 5)
  t.is(r, s0, "a blocked acquire is woken by a release in another thread")
  t.ok(dt < 2, "... soon after it")
  th:join()
end

-- A Semaphore(3) lets at most three threads in at once ----------------------------------
do
  local s = threading.Semaphore(3)
  local inside, max_inside = 0, 0
  local ths = {}
  for i = 1, 8 do
    ths[i] = threading.Thread{ target = function()
      local _ <close> = s:acquire()
      inside = inside + 1
      if inside > max_inside then max_inside = inside end
      time.sleep(0.05)
      inside = inside - 1
    end }
    ths[i]:start()
  end
  local t0 = util.clock()
  for i = 1, 8 do ths[i]:join() end
  t.is(max_inside, 3, "at most (and, with 8 threads, exactly) three threads inside")
  t.ok(util.clock() - t0 >= 0.1, "eight 50 ms holders in rounds of three take at least 0.1 s")
  t.is(inside, 0, "all left")
  t.is(s:acquire(false), s, "<close> released the semaphore (1)")
  s:release()
end

-- with ------------------------------------------------------------------------------------------
do
  local s = threading.Semaphore(1)
  local r = s:with(function(x) return x * 2 end, 21)
  t.is(r, 42, "Semaphore:with returns fn's result")
  t.is(s:acquire(false), s, "... and released it")
  s:release()
  pcall(s.with, s, function() error("x") end)
  t.is(s:acquire(false), s, "with released it although fn raised")
  s:release()
end

-- BoundedSemaphore ---------------------------------------------------------------------------------
do
  local b = threading.BoundedSemaphore(2)
  t.ok(threading.Semaphore:is(b), "a BoundedSemaphore is a Semaphore")
  t.raises(function() b:release() end, ValueError, "over-releasing a BoundedSemaphore: ValueError")
  b:acquire(); b:acquire()
  t.is(b:acquire(false), false, "BoundedSemaphore(2) holds two")
  b:release()
  t.raises(function() b:release(2) end, ValueError, "release(2) past the bound: ValueError")
  b:release()
  t.raises(function() b:release() end, ValueError, "one release too many: ValueError")
  t.is(b:acquire(false), b, "the failed releases did not change the value (1)")
  t.is(b:acquire(false), b, "the failed releases did not change the value (2)")
  t.is(b:acquire(false), false, "the failed releases did not change the value (3)")
  b:release(); b:release()
  do
    local _ <close> = b:acquire()
  end
  t.raises(function() b:release() end, ValueError, "<close> released exactly once")
end

-- release(n) wakes n waiters; tostring shows the value; bad arguments -----------------------
do
  local s = threading.Semaphore(0)
  local got, started = 0, 0
  local ths = {}
  for i = 1, 4 do
    ths[i] = threading.Thread{ target = function()
      started = started + 1
      if s:acquire(true, 5) then got = got + 1 end
    end }
    ths[i]:start()
  end
  util.wait_until(function() return started == 4 end, 5)
  time.sleep(0.05)
  s:release(3)
  util.wait_until(function() return got == 3 end, 5)
  time.sleep(0.05)
  t.is(got, 3, "release(3) with four waiters lets exactly three through")
  s:release{n = 1}
  for i = 1, 4 do ths[i]:join() end
  t.is(got, 4, "release{n = 1} lets the last one through")
  t.like(tostring(threading.Semaphore(2)), "Semaphore value=2", "tostring shows the value")
  t.raises(function() s:release("2") end, TypeError, "release of a string: TypeError")
  t.raises(function() s:release(1.5) end, TypeError, "release of 1.5: TypeError")
  t.raises(function() s:acquire(true, "soon") end, TypeError, "a string timeout: TypeError")
  t.is(s:acquire(true, -1), false, "a negative timeout on an empty semaphore: a try that fails")
  t.raises(function() threading.Semaphore.acquire({}) end, "Semaphore expected",
           "acquire on a table that is no Semaphore: an error")
end

-- Lua's integers have a top that Python's do not: a release past it is an
-- OverflowError, and the count does not wrap negative.
do
  local s = threading.Semaphore(math.maxinteger)
  t.raises(function() s:release() end, OverflowError,
           "Semaphore(math.maxinteger):release(): OverflowError")
  t.ok(s:acquire(false), "... the count did not wrap: the semaphore can still be acquired")
end

t.done_testing()
