-- samples/gil/switch_interval.lua: what sys.setswitchinterval changes.
--
--     gilua samples/gil/switch_interval.lua [timeline.html]
--
-- For switch intervals of 1, 5 (the default) and 20 ms, two measurements:
--   * two CPU-bound threads for 0.4 s: how often the GIL changes hands
--     (about 1/interval a second) and how long each thread keeps it;
--   * an I/O-bound thread (1 ms sleeps) beside a CPU-bound one: its median
--     wake-up latency, about one interval (samples/gil/convoy.lua).
-- A short interval makes I/O-bound threads responsive and costs more
-- switches; a long one does the opposite. Python's sys.setswitchinterval is
-- the same knob, with the same default; gilua --switch-interval=S sets it
-- from the command line.
--
-- With a file name, the whole run is drawn as a timeline page: the rhythm
-- of the lanes changes with each interval.
local threading = require "threading"
local time = require "time"
local gil = require "gil"
local sys = require "sys"

local timeline = arg and arg[1]
local INTERVALS = {0.001, 0.005, 0.020}
local CPU_TIME, REQUESTS, WAIT = 0.4, 60, 0.001
local clock = time.perf_counter

local function median(xs)
  table.sort(xs)
  local n = #xs
  return n % 2 == 1 and xs[(n + 1) // 2] or (xs[n // 2] + xs[n // 2 + 1]) / 2
end

-- Spins until told to stop (a plain Lua loop: never lets go by itself).
local function spinner(name, state)
  return threading.Thread{name = name, target = function()
    local n = 0
    while not state.stop do n = n + 1 end
    state[name] = n
  end}
end

local function cpu_vs_cpu()
  local state = {stop = false}
  local a, b = spinner("cpu-a", state), spinner("cpu-b", state)
  gil.reset_stats()
  a:start(); b:start()
  time.sleep(CPU_TIME)                    -- the main thread just waits
  state.stop = true
  a:join(); b:join()
  local st = gil.stats()
  local held, acq = 0, 0
  for _, th in ipairs(st.threads) do
    if th.name:match("^cpu%-") then
      held, acq = held + th.hold_time, acq + th.acquisitions
    end
  end
  return st.switches / st.elapsed, held / math.max(acq, 1)
end

local function io_beside_cpu()
  local state = {stop = false}
  local cpu = spinner("cpu", state)
  local lat = {}
  cpu:start()
  local io_thread = threading.Thread{name = "io", target = function()
    for i = 1, REQUESTS do
      local before = clock()
      time.sleep(WAIT)
      lat[i] = clock() - before - WAIT
    end
  end}
  io_thread:start(); io_thread:join()
  state.stop = true
  cpu:join()
  return median(lat)
end

if timeline then gil.trace_start(timeline) end
print(("%-10s %16s %16s %22s"):format("interval", "switches/s", "mean slice",
                                      "I/O wake-up latency"))
local results = {}
for _, iv in ipairs(INTERVALS) do
  sys.setswitchinterval(iv)
  local rate, slice = cpu_vs_cpu()
  local lat = io_beside_cpu()
  results[#results + 1] = {iv, rate, slice, lat}
  print(("%7.1f ms %14.0f/s %13.2f ms %19.2f ms"):format(iv * 1e3, rate,
        slice * 1e3, lat * 1e3))
end
sys.setswitchinterval(0.005)
if timeline then
  gil.trace_stop()
  print("timeline: " .. timeline)
end
print("The GIL changes hands about once an interval, and a thread that wakes"
      .. " up from I/O beside a busy one waits about one interval.")
for _, r in ipairs(results) do
  print(("interval_ms=%.3f switches_per_s=%.1f slice_ms=%.3f latency_ms=%.3f")
        :format(r[1] * 1e3, r[2], r[3] * 1e3, r[4] * 1e3))
end
