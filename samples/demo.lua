-- samples/demo.lua: the headline demo of gilua (run by `make demo`).
--
-- The lesson of the course in one run: under a Global Interpreter Lock,
-- threads overlap waiting (I/O) but not computing (CPU).
--   * CPU-bound: the same two calls of a counting loop, one after the
--     other, then in two threads. Only the GIL holder runs Lua, and the
--     holder is made to hand it over every 5 ms, so the two threads take
--     turns and finish in about the sequential time.
--   * I/O-bound: ten waits of 0.15 s (time.sleep, standing for a network
--     or disk wait), one after the other, then in ten threads. A thread
--     releases the GIL while it waits, so the ten waits overlap.
-- Cours « Concurrence avancée » 20.6 (GIL) and « La concurrence en Python »
-- (Problème du GIL): I/O-bound -> threading, CPU-bound -> multiprocessing.
local threading = require "threading"
local time = require "time"
local gil = require "gil"

local N = 10000000        -- loop turns per CPU-bound call
local NB_IO, WAIT = 10, 0.15

local function count(n)
  local c = 0
  for i = 1, n do c = c + i % 3 end
  return c
end

local function in_threads(nb, fn, ...)
  local threads = {}
  for i = 1, nb do
    threads[i] = threading.Thread{target = fn, args = table.pack(...)}
    threads[i]:start()
  end
  for _, t in ipairs(threads) do t:join() end
end

local function timed(fn)
  local t0 = time.perf_counter()
  fn()
  return time.perf_counter() - t0
end

local function row(what, seq, thr)
  print(("%-34s %9.2fs %9.2fs %8.2fx"):format(what, seq, thr, seq / thr))
end

print(("gilua (%s), switch interval %g ms, %d CPUs"):format(
  _VERSION, require("sys").getswitchinterval() * 1000, os.cpu_count() or 0))
print()
print(("%-34s %10s %10s %9s"):format("workload", "sequential", "threads", "speed-up"))
print(("-"):rep(66))

local cpu_seq = timed(function() count(N); count(N) end)
gil.reset_stats()
local cpu0 = time.process_time()
local cpu_thr = timed(function() in_threads(2, count, N) end)
local busy = (time.process_time() - cpu0) / cpu_thr   -- cores computing at once
local st = gil.stats()
row(("CPU-bound: 2 x count(%dM)"):format(N // 1000000), cpu_seq, cpu_thr)

local io_seq = timed(function() for _ = 1, NB_IO do time.sleep(WAIT) end end)
local io_thr = timed(function() in_threads(NB_IO, time.sleep, WAIT) end)
row(("I/O-bound: %d x sleep(%.2f s)"):format(NB_IO, WAIT), io_seq, io_thr)

print()
print(("(the two CPU-bound threads handed the GIL over %d times, %d of them forced,")
      :format(st.switches, st.forced_switches))
print(("and kept %.2f cores busy on average: CPU time / elapsed time)"):format(busy))
print("Lesson: threads overlap I/O (waits run at the same time) but not CPU "
      .. "(the GIL lets one thread compute at a time).")
