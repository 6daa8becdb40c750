-- bench/pool_tasks.lua: twin of pool_tasks.py.
--
-- 50,000 trivial tasks submitted to a ThreadPoolExecutor(4), then every
-- result collected: the cost of submit, of the hand-over to a worker and
-- of the Future, with no work in the task itself.
-- Prints time=<seconds>.
local futures = require "concurrent.futures"
local time = require "time"

local NB = 50000

local function tache(x) return x end

local t0 = time.perf_counter()
local somme = 0
do
  local pool <close> = futures.ThreadPoolExecutor(4)
  local futurs = {}
  for i = 1, NB do futurs[i] = pool:submit(tache, i) end
  for i = 1, NB do somme = somme + futurs[i]:result() end
end
print(("time=%.6f"):format(time.perf_counter() - t0))
print(("check=%d"):format(somme))
