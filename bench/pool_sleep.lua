-- bench/pool_sleep.lua: twin of pool_sleep.py.
--
-- The course's example: 10 tasks of sleep(0.1) on ThreadPoolExecutor
-- {max_workers = 4}. Sleeping releases the GIL, so the 4 workers overlap:
-- 3 rounds, about 0.3 s instead of 1 s.
-- Prints time=<seconds>.
local futures = require "concurrent.futures"
local time = require "time"

local function tache(n)
  time.sleep(0.1)
  return n * n
end

local t0 = time.perf_counter()
local somme = 0
do
  local pool <close> = futures.ThreadPoolExecutor{max_workers = 4}
  local futurs = {}
  for i = 0, 9 do futurs[#futurs + 1] = pool:submit(tache, i) end
  for _, f in ipairs(futurs) do somme = somme + f:result() end
end
print(("time=%.6f"):format(time.perf_counter() - t0))
print(("check=%d"):format(somme))
