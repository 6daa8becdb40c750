#!/usr/bin/env gilua
-- The time module: sleep releases the GIL; the clocks.
local t = require "tap"
local threading = require "threading"
local time = require "time"
local util = require "support.util"

-- sleep ---------------------------------------------------------------------------------------
do
  local t0 = time.monotonic()
  time.sleep(0.1)
  local dt = time.monotonic() - t0
  t.between(dt, 0.095, 1, "sleep(0.1) sleeps about 0.1 s, never less")
  t0 = time.monotonic()
  time.sleep(0)
  t.ok(time.monotonic() - t0 < 0.1, "sleep(0) returns at once")
  t.raises(function() time.sleep(-1) end, ValueError, "sleep(-1): ValueError")
  t.raises(function() time.sleep("x") end, "sleep", "sleep('x'): an error naming sleep")

  local ticks, dt2 = util.ticks_during(time.sleep, 0.3)
  t.between(dt2, 0.29, 2, "sleep(0.3) with another thread running")
  t.ok(ticks >= 5, "sleep releases the GIL: another thread ticked (" .. ticks .. ")")

  -- two threads sleeping 0.3 each overlap
  t0 = time.monotonic()
  local a = threading.Thread{ target = time.sleep, args = {0.3} }
  local b = threading.Thread{ target = time.sleep, args = {0.3} }
  a:start(); b:start(); a:join(); b:join()
  t.between(time.monotonic() - t0, 0.29, 0.55, "two threads sleeping 0.3 s take about 0.3 s")

  -- a CPU-bound thread is not slowed down by a sleeping one, and the sleeper
  -- wakes up on time even though the other never blocks
  local N = util.calibrate(0.3)
  local woke
  local s = threading.Thread{ target = function()
    local t1 = time.monotonic(); time.sleep(0.1); woke = time.monotonic() - t1
  end }
  s:start()
  util.spin(N)
  s:join()
  t.between(woke, 0.095, 0.3, "a sleeper wakes on time while main is CPU-bound (switch interval)")
end

-- clocks ------------------------------------------------------------------------------------------
do
  local now = time.time()
  t.is(math.type(now), "float", "time() is a float")
  t.ok(math.abs(now - os.time()) <= 2, "time() is the epoch time, like os.time()")
  t.ok(math.abs(time.time_ns() / 1e9 - time.time()) < 1, "time_ns() agrees with time()")
  t.is(math.type(time.time_ns()), "integer", "time_ns() is an integer")

  local m1 = time.monotonic()
  local m2 = time.monotonic()
  t.ok(m2 >= m1, "monotonic() does not go back")
  t.is(math.type(time.monotonic_ns()), "integer", "monotonic_ns() is an integer")

  local p1 = time.perf_counter()
  time.sleep(0.05)
  local p2 = time.perf_counter()
  t.between(p2 - p1, 0.045, 1, "perf_counter() measures a sleep")
  local n1 = time.perf_counter_ns()
  time.sleep(0.05)
  local n2 = time.perf_counter_ns()
  t.is(math.type(n1), "integer", "perf_counter_ns() is an integer")
  t.between((n2 - n1) / 1e9, 0.045, 1, "perf_counter_ns() measures a sleep in nanoseconds")
  t.ok(math.abs(time.perf_counter_ns() / 1e9 - time.perf_counter()) < 0.5,
       "perf_counter_ns() and perf_counter() are the same clock")
end

-- thread_time: CPU time of the calling thread only --------------------------------------------------
do
  local N = util.calibrate(0.2)
  local c0 = time.thread_time()
  time.sleep(0.2)
  local slept = time.thread_time() - c0
  t.ok(slept < 0.05, "thread_time() does not count sleeping (" .. slept .. ")")
  c0 = time.thread_time()
  util.spin(N)
  local spun = time.thread_time() - c0
  t.between(spun, 0.05, 2, "thread_time() counts CPU work (" .. spun .. ")")

  -- another thread's CPU work is not ours
  local other_cpu
  local th = threading.Thread{ target = function()
    local c = time.thread_time()
    util.spin(N)
    other_cpu = time.thread_time() - c
  end }
  c0 = time.thread_time()
  th:start(); th:join()
  local mine = time.thread_time() - c0
  t.ok(other_cpu and other_cpu > 0.05, "the thread measured its own CPU time")
  t.ok(mine < other_cpu / 2, "main's thread_time() did not count the other thread's work ("
       .. string.format("%.3f vs %.3f", mine, other_cpu or -1) .. ")")
  t.ok(time.process_time() >= spun, "process_time() counts the whole process")
end

t.done_testing()
