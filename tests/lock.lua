#!/usr/bin/env gilua
-- threading.Lock and threading.RLock: acquire(blocking, timeout) as Python,
-- release misuse, <close>, lock:with, and waits that release the GIL.
local t = require "tap"
local threading = require "threading"
local time = require "time"
local util = require "support.util"

-- Lock basics -------------------------------------------------------------------
do
  local lk = threading.Lock()
  t.is(lk:locked(), false, "a new Lock is unlocked")
  t.is(lk:acquire(), lk, "acquire() returns the lock itself")
  t.is(lk:locked(), true, "locked() after acquire")
  t.is(lk:acquire(false), false, "acquire(false) on a held lock returns false at once")
  t.is(lk:acquire{blocking = false}, false, "acquire{blocking = false} too")
  local dt, r = util.timed(lk.acquire, lk, true, 0.2)
  t.is(r, false, "acquire(true, 0.2) on a held lock returns false")
  t.between(dt, 0.17, 1.5, "... after about its timeout")
  dt, r = util.timed(lk.acquire, lk, {timeout = 0.1})
  t.is(r, false, "acquire{timeout = 0.1} returns false")
  t.between(dt, 0.08, 1.5, "... after about its timeout")
  dt, r = util.timed(lk.acquire, lk, true, 0)
  t.is(r, false, "acquire(true, 0) is a try")
  t.ok(dt < 0.1, "... that does not wait")
  lk:release()
  t.is(lk:locked(), false, "unlocked after release")
  t.raises(function() lk:release() end, RuntimeError, "releasing an unlocked Lock: RuntimeError")
  t.is(lk:acquire(true, 0.5), lk, "acquire with a timeout on a free lock returns the lock")
  lk:release()
  t.is(lk:acquire(false), lk, "acquire(false) on a free lock returns the lock")
  lk:release()
end

-- acquire argument checks -----------------------------------------------------------
do
  local lk = threading.Lock()
  t.raises(function() lk:acquire(false, 1) end, ValueError,
           "acquire(false, 1): ValueError (timeout with a non-blocking call)")
  t.raises(function() lk:acquire{blocking = false, timeout = 1} end, ValueError,
           "acquire{blocking = false, timeout = 1}: ValueError")
  t.raises(function() lk:acquire(true, -2) end, ValueError,
           "a negative timeout other than -1: ValueError")
  t.is(lk:locked(), false, "failed argument checks leave the lock free")
  t.is(lk:acquire(true, -1), lk, "timeout -1 means forever (and the lock is free)")
  lk:release()
end

-- A plain Lock may be released by another thread (Python allows it) ---------------------
do
  local lk = threading.Lock()
  lk:acquire()
  local err
  local th = threading.Thread{ target = function()
    local ok, e = pcall(lk.release, lk)
    if not ok then err = e end
  end }
  th:start(); th:join()
  t.is(err, nil, "another thread may release a Lock")
  t.is(lk:locked(), false, "... which is then unlocked")
end

-- A blocked acquire is woken by a release from another thread -------------------------
do
  local lk = threading.Lock()
  lk:acquire()
  local th = threading.Thread{ target = function() time.sleep(0.15); lk:release() end }
  th:start()
  local dt, r = util.timed(lk.acquire, lk, true, 5)
  t.is(r, lk, "a waiting acquire gets the lock when another thread releases it")
  t.between(dt, 0.1, 2, "... at about the time of the release")
  lk:release()
  th:join()
end

-- Waiting releases the GIL and honours its timeout ----------------------------------------
do
  local lk = threading.Lock()
  lk:acquire()
  local ticks, dt, r = util.ticks_during(lk.acquire, lk, true, 0.3)
  t.is(r, false, "timed acquire fails on a held lock")
  t.between(dt, 0.27, 2, "timed acquire waited about its timeout")
  t.ok(ticks >= 5, "another thread ran while acquire was blocked (" .. ticks .. " ticks)")
  lk:release()
end

-- <close> and with ---------------------------------------------------------------------------
do
  local lk = threading.Lock()
  do
    local _ <close> = lk:acquire()
    t.is(lk:locked(), true, "held inside the <close> scope")
  end
  t.is(lk:locked(), false, "released at the end of the <close> scope")

  local ok = pcall(function()
    local _ <close> = lk:acquire()
    error("boom")
  end)
  t.ok(not ok and not lk:locked(), "released when the <close> scope raises")

  lk:acquire()
  local ok2, e = pcall(function()
    local got <close> = lk:acquire(false)   -- false: nothing to close
    t.is(got, false, "a failed acquire gives false to <close>")
  end)
  t.ok(ok2, "a <close> variable holding false does not raise (" .. tostring(e) .. ")")
  t.is(lk:locked(), true, "... and does not release the lock held elsewhere")
  lk:release()

  local a, b = lk:with(function(x, y)
    t.is(lk:locked(), true, "held inside with(fn)")
    return x + y, "second"
  end, 2, 3)
  t.is(a, 5, "with(fn, ...) passes arguments and returns fn's result")
  t.is(b, "second", "... every result")
  t.is(lk:locked(), false, "released after with(fn)")
  local okw, err = pcall(lk.with, lk, function() error(ValueError("inside")) end)
  t.ok(not okw and ValueError:is(err), "with(fn) passes fn's error on")
  t.is(lk:locked(), false, "with(fn) released the lock although fn raised")
end

-- RLock ------------------------------------------------------------------------------------------
do
  local rl = threading.RLock()
  t.is(rl:acquire(), rl, "RLock acquire returns the lock")
  t.is(rl:acquire(), rl, "RLock is re-entrant")
  t.is(rl:acquire(false), rl, "... also non-blocking by its owner")
  rl:release(); rl:release()
  -- held once more: another thread cannot take it
  local other
  local th = threading.Thread{ target = function() other = rl:acquire(true, 0.1) end }
  th:start(); th:join()
  t.is(other, false, "another thread cannot take a held RLock")
  -- release by a non-owner
  local err
  th = threading.Thread{ target = function()
    local ok, e = pcall(rl.release, rl)
    if not ok then err = e end
  end }
  th:start(); th:join()
  t.ok(RuntimeError:is(err), "releasing an RLock owned by another thread: RuntimeError")
  rl:release()
  t.raises(function() rl:release() end, RuntimeError, "releasing an un-acquired RLock: RuntimeError")
  th = threading.Thread{ target = function()
    other = rl:acquire(false)
    if other then rl:release() end
  end }
  th:start(); th:join()
  t.is(other, rl, "after the last release another thread can take it")
  t.raises(function() rl:acquire(false, 1) end, ValueError,
           "RLock acquire(false, 1): ValueError")

  do
    local _ <close> = rl:acquire()
    do
      local _ <close> = rl:acquire()
    end
    local inner
    th = threading.Thread{ target = function() inner = rl:acquire(false) end }
    th:start(); th:join()
    t.is(inner, false, "<close> released only one level of the RLock")
  end
  local freed
  th = threading.Thread{ target = function()
    freed = rl:acquire(false)
    if freed then rl:release() end
  end }
  th:start(); th:join()
  t.is(freed, rl, "both <close> levels released")

  -- a wait on an RLock held by another thread releases the GIL and times out
  local go, done = threading.Event(), threading.Event()
  local holder = threading.Thread{ target = function()
    rl:acquire(); go:set(); done:wait(); rl:release()
  end }
  holder:start(); go:wait()
  local ticks, dt, got = util.ticks_during(rl.acquire, rl, true, 0.3)
  t.is(got, false, "RLock held by another thread: timed acquire fails")
  t.between(dt, 0.27, 2, "... after about its timeout")
  t.ok(ticks >= 5, "... and another thread ran meanwhile (" .. ticks .. " ticks)")
  done:set(); holder:join()

  local r = rl:with(function() return rl:with(function() return "nested" end) end)
  t.is(r, "nested", "RLock:with can nest")
end

-- The mutual exclusion itself: a read-modify-write with a sleep inside
do
  local lk = threading.Lock()
  local value, inside, max_inside = 0, 0, 0
  local ths = {}
  for i = 1, 5 do
    ths[i] = threading.Thread{ target = function()
      for _ = 1, 4 do
        lk:with(function()
          inside = inside + 1
          if inside > max_inside then max_inside = inside end
          local v = value
          time.sleep(0.002)
          value = v + 1
          inside = inside - 1
        end)
      end
    end }
    ths[i]:start()
  end
  for i = 1, 5 do ths[i]:join() end
  t.is(value, 20, "no update lost with a sleep inside the critical section")
  t.is(max_inside, 1, "never two threads inside the critical section")
end

t.like(tostring(threading.Lock()), "lock", "tostring of a Lock names it")

-- lock methods check their object ---------------------------------------------------
do
  local lk, rl = threading.Lock(), threading.RLock()
  t.raises(function() lk.acquire({}) end, "lock expected", "Lock.acquire on a table: an error")
  t.raises(function() lk.release(io.stdout) end, "lock expected", "Lock.release on a file: an error")
  t.raises(function() lk.acquire() end, "lock expected", "Lock.acquire on nothing: an error")
  local fake = setmetatable({}, debug.getmetatable(lk))
  t.raises(function() lk.release(fake) end, "lock expected",
           "a table given a lock's metatable is no lock")
  t.raises(function() lk:with() end, "bad argument", "with() without a function: an error")
  t.is(lk.acquire(rl), rl, "Lock.acquire applied to an RLock acquires the RLock")
  t.is(rl:acquire(), rl, "... which is re-entrant")
  rl:release(); rl:release()
  t.is(rl:locked(), false, "... and released twice is free")
  local _ <close> = lk:acquire()
  t.is(lk:locked(), true, "<close> on a plain acquire(): held in the scope")
end

-- other objects are refused after the last lock used has been collected -----------------
do
  local acquire = threading.Lock().acquire
  do local lk = threading.Lock(); lk:acquire(); lk:release() end
  collectgarbage(); collectgarbage()
  local refused = 0
  for _ = 1, 50 do
    local f = io.tmpfile()
    if not pcall(acquire, f) then refused = refused + 1 end
    f:close()
  end
  t.is(refused, 50, "files made after a used lock was collected are not taken for locks")
end

t.done_testing()
