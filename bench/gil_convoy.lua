-- bench/gil_convoy.lua: twin of gil_convoy.py.
--
-- The convoy effect under one GIL policy (argument: new, old, io-priority
-- or fifo; CPython's twin is new whatever the argument): an I/O-bound
-- thread does 200 sleeps of 1 ms beside a CPU-bound thread and measures
-- how late it gets back to running each time. Prints time=<median
-- wake-up latency>, p99=<99th percentile> and check=<wake-ups>.
local threading = require "threading"
local time = require "time"
local sys = require "sys"

local REQUESTS, WAIT = 200, 0.001
local clock = time.perf_counter

sys.setgilpolicy(arg[1] or "new")
local stop = false
local cpu = threading.Thread{target = function()
  local n = 0
  while not stop do n = n + 1 end
end}
cpu:start()
local lat = {}
local io = threading.Thread{target = function()
  for i = 1, REQUESTS do
    local before = clock()
    time.sleep(WAIT)
    lat[i] = clock() - before - WAIT
  end
end}
io:start(); io:join()
stop = true
cpu:join()
table.sort(lat)
print(("time=%.6f"):format(lat[REQUESTS // 2]))
print(("p99=%.6f"):format(lat[math.ceil(REQUESTS * 0.99)]))
print(("check=%d"):format(#lat))
