-- samples/gil/cpu_vs_cpu.lua: two CPU-bound threads play ping-pong with
-- the GIL.
--
--     gilua samples/gil/cpu_vs_cpu.lua [timeline.html]
--
-- The same counting loop runs twice one after the other, then in two
-- threads. With the GIL only one thread runs Lua at a time: the two
-- threads take about as long as the sequence (no speed-up on any number
-- of cores). gil.stats() shows how they share it: each waits a switch
-- interval (5 ms), asks the holder to let go (a drop request), gets the
-- GIL, runs about 5 ms until the other one asks in turn. About 200
-- switches a second, nearly all forced.
-- Cours « La concurrence en Python » (Problème du GIL) and « Concurrence
-- avancée » 20.6: threading gives no parallelism for CPU-bound work.
--
-- With a file name, the threaded part is also drawn as a timeline page:
-- the two lanes alternate green (running) and orange (waiting), a red
-- mark at each drop request.
local threading = require "threading"
local time = require "time"
local gil = require "gil"
local sys = require "sys"

local timeline = arg and arg[1]

local function count(n)
  local c = 0
  for i = 1, n do c = c + i % 3 end
  return c
end

-- Loop turns for about 'secs' of CPU on this machine.
local function calibrate(secs)
  local n = 100000
  while true do
    local t0 = time.perf_counter()
    count(n)
    local dt = time.perf_counter() - t0
    if dt > 0.05 then return math.floor(n * secs / dt) end
    n = n * 2
  end
end

local N = calibrate(0.4)

local t0 = time.perf_counter()
count(N); count(N)
local seq = time.perf_counter() - t0

if timeline then gil.trace_start(timeline) end
gil.reset_stats()
t0 = time.perf_counter()
local a = threading.Thread{name = "cpu-1", target = count, args = {N}}
local b = threading.Thread{name = "cpu-2", target = count, args = {N}}
a:start(); b:start(); a:join(); b:join()
local par = time.perf_counter() - t0
local st = gil.stats()
if timeline then gil.trace_stop() end

local interval = sys.getswitchinterval()
print(("two calls one after the other: %.3f s"):format(seq))
print(("the same two calls in two threads: %.3f s (%.2fx the sequence)")
      :format(par, par / seq))
print(("GIL switches: %d in %.3f s = %.0f a second, %d forced by a drop request")
      :format(st.switches, par, st.switches / par, st.forced_switches))
print(("switch interval %.1f ms; per thread:"):format(interval * 1e3))
print(("  %-8s %9s %9s %9s %12s"):format("thread", "holding", "waiting",
                                          "acquired", "mean slice"))
local slices, nslices = 0, 0
for _, th in ipairs(st.threads) do
  if th.name:match("^cpu%-") then
    local slice = th.hold_time / math.max(th.acquisitions, 1)
    print(("  %-8s %7.3f s %7.3f s %9d %9.2f ms"):format(th.name, th.hold_time,
          th.wait_time, th.acquisitions, slice * 1e3))
    slices, nslices = slices + slice, nslices + 1
  end
end
print(("Each thread ran about %.1f ms at a time, then waited while the other did.")
      :format(slices / nslices * 1e3))
if timeline then print("timeline: " .. timeline) end
-- for scripts
print(("ratio=%.3f\nswitches_per_s=%.1f\nslice_ms=%.3f\ninterval_ms=%.3f")
      :format(par / seq, st.switches / par, slices / nslices * 1e3, interval * 1e3))
