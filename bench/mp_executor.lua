-- bench/mp_executor.lua: twin of mp_executor.py.
--
-- ProcessPoolExecutor(2): 5,000 trivial tasks submitted, then every result
-- read; the pool's start and shutdown are inside the timing. Prints
-- time=<seconds>, tasks_per_s and check.
local futures = require "concurrent.futures"
local time = require "time"

local NB = 5000

local function double(x) return 2 * x end

local t0 = time.perf_counter()
local somme = 0
do
  local pool <close> = futures.ProcessPoolExecutor{max_workers = 2}
  local fs = {}
  for i = 1, NB do fs[i] = pool:submit(double, i) end
  for i = 1, NB do somme = somme + fs[i]:result() end
end
local dt = time.perf_counter() - t0
print(("time=%.6f"):format(dt))
print(("tasks_per_s=%.0f"):format(NB / dt))
print(("check=%d"):format(somme))
