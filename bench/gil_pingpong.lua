-- bench/gil_pingpong.lua: twin of gil_pingpong.py.
--
-- Round trips over a multiprocessing.Pipe between two threads, beside a
-- CPU-bound thread, for 1 s, under one GIL policy (argument: new, old,
-- io-priority or fifo; CPython's twin is new whatever the argument). Every
-- send and receive releases the GIL, and taking it back beside the
-- CPU-bound thread is what the policy decides. Prints time=<seconds per
-- round trip> and rate=<round trips per second>.
local threading = require "threading"
local multiprocessing = require "multiprocessing"
local time = require "time"
local sys = require "sys"

local SECS = 1.0
local clock = time.perf_counter

sys.setgilpolicy(arg[1] or "new")
local stop = false
local cpu = threading.Thread{target = function()
  local n = 0
  while not stop do n = n + 1 end
end}
cpu:start()
local a, b = multiprocessing.Pipe()
local echo = threading.Thread{target = function()
  while true do
    local v = b:recv()
    if v == nil then break end
    b:send(v)
  end
end}
echo:start()
local trips = 0
local t0 = clock()
while clock() - t0 < SECS do
  a:send(trips)
  a:recv()
  trips = trips + 1
end
local dt = clock() - t0
a:send(nil)
echo:join()
stop = true
cpu:join()
print(("time=%.9f"):format(dt / trips))
print(("rate=%.1f"):format(trips / dt))
