-- bench/mp_pipe.lua: twin of mp_pipe.py.
--
-- 20,000 round trips over a Pipe between the parent and a child that
-- sends every number back. Prints time=<seconds>, round_trips_per_s, check.
local multiprocessing = require "multiprocessing"
local time = require "time"

local NB = 20000

local a, b = multiprocessing.Pipe()
local p = multiprocessing.Process{target = function()
  while true do
    local x = b:recv()
    if x == nil then break end
    b:send(x)
  end
end}
p:start()
local t0 = time.perf_counter()
local somme = 0
for i = 1, NB do
  a:send(i)
  somme = somme + a:recv()
end
local dt = time.perf_counter() - t0
a:send(nil)
p:join()
print(("time=%.6f"):format(dt))
print(("round_trips_per_s=%.0f"):format(NB / dt))
print(("check=%d"):format(somme))
