-- bench/floor_method_calls.lua: the floor of lock_uncontended, run by the
-- same gilua in the same run. The same loop with two trivial C method
-- calls (s:len()) in place of acquire() and release(): the cost of two
-- method calls and nothing else, which a lock pair cannot beat.
-- Prints time=<seconds>.
local time = require "time"

local NB = 1000000

local s = "verrou"
local t0 = time.perf_counter()
for _ = 1, NB do
  s:len()
  s:len()
end
print(("time=%.6f"):format(time.perf_counter() - t0))
print(("check=%d"):format(0))
