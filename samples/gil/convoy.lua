-- samples/gil/convoy.lua: the convoy effect. A CPU-bound thread makes an
-- I/O-bound thread wait about one switch interval each time it wakes up.
--
--     gilua samples/gil/convoy.lua [timeline.html]
--
-- The I/O thread does 200 short blocking calls (a 1 ms sleep, standing for
-- a network or disk wait) and measures its wake-up latency: how late it
-- gets back to running Lua after each call should have ended.
--   * Alone, it gets the GIL back at once: the latency is the system's
--     timer slack, well under a millisecond.
--   * Beside a CPU-bound thread, the GIL is busy when the call ends. The
--     I/O thread waits the whole switch interval (5 ms), posts a drop
--     request, and only then the CPU-bound thread lets go: every wake-up
--     costs about 5 ms, and 200 requests that took 0.2 s take over 1 s.
-- CPython behaves the same (samples/gil/convoy.py is the twin; its
-- figures are alike). This is the picture of the course's slide « Impact
-- sur les programmes multithreadés en Python »: a CPU-bound thread starves
-- an I/O-bound one. sys.setswitchinterval changes the price
-- (samples/gil/switch_interval.lua).
--
-- With a file name, the run beside the CPU-bound thread is drawn as a
-- timeline page: the I/O lane is blue (blocked), then orange (waiting for
-- the GIL) for about 5 ms, a red drop request, a thin green sliver.
local threading = require "threading"
local time = require "time"
local gil = require "gil"
local sys = require "sys"

local timeline = arg and arg[1]
local REQUESTS, WAIT = 200, 0.001
local clock = time.perf_counter

local function median(xs)
  table.sort(xs)
  local n = #xs
  return n % 2 == 1 and xs[(n + 1) // 2] or (xs[n // 2] + xs[n // 2 + 1]) / 2
end

-- The I/O-bound thread's work; returns the wake-up latencies and the time.
local function io_bound(requests)
  local lat = {}
  local t0 = clock()
  for i = 1, requests do
    local before = clock()
    time.sleep(WAIT)                      -- blocking call, GIL released
    lat[i] = clock() - before - WAIT      -- late by this much
  end
  return lat, clock() - t0
end

local function run_io(requests)
  local lat, total
  local th = threading.Thread{name = "io", target = function()
    lat, total = io_bound(requests)
  end}
  th:start(); th:join()
  return lat, total
end

-- 1. alone
local lat_alone, total_alone = run_io(REQUESTS)

-- 2. beside a CPU-bound thread
if timeline then gil.trace_start(timeline) end
local stop = false
local cpu = threading.Thread{name = "cpu", target = function()
  local n = 0
  while not stop do n = n + 1 end         -- pure Lua: never lets go by itself
end}
cpu:start()
gil.reset_stats()
local lat_cpu, total_cpu = run_io(REQUESTS)
stop = true
cpu:join()
local st = gil.stats()
if timeline then gil.trace_stop() end

local interval = sys.getswitchinterval()
local m_alone, m_cpu = median(lat_alone), median(lat_cpu)
print(("%d blocking calls of %.0f ms in an I/O-bound thread (switch interval %.1f ms)")
      :format(REQUESTS, WAIT * 1e3, interval * 1e3))
print(("  alone:                   median wake-up latency %6.3f ms, total %.3f s")
      :format(m_alone * 1e3, total_alone))
print(("  beside a CPU-bound thread: median wake-up latency %6.3f ms, total %.3f s")
      :format(m_cpu * 1e3, total_cpu))
print(("  = %.2f switch intervals per wake-up; %d drop requests, %d forced switches")
      :format(m_cpu / interval, st.drop_requests, st.forced_switches))
for _, th in ipairs(st.threads) do
  if th.name == "io" then
    print(("  the I/O thread waited %.3f s for the GIL in %d acquisitions")
          :format(th.wait_time, th.acquisitions))
  end
end
if timeline then print("timeline: " .. timeline) end
print(("alone_median_ms=%.4f\ncpu_median_ms=%.4f\ninterval_ms=%.3f")
      :format(m_alone * 1e3, m_cpu * 1e3, interval * 1e3))
