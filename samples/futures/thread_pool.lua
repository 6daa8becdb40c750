-- Cours « Concurrence avancée » 20.4, concurrent.futures : ThreadPoolExecutor avec submit, puis la version courte avec map
--
-- `with ThreadPoolExecutor(max_workers=4) as pool:` is a to-be-closed
-- variable: the pool is shut down (waiting for its tasks) at the end of the
-- `do ... end` block. `n ** 2` is `n * n` (Lua's `^` gives a float), and
-- `range(10)` is the array {0, ..., 9}. 10 tasks of 0.1 s on 4 workers run
-- in 3 rounds: about 0.3 s instead of 1 s. (The course's third block, with
-- ProcessPoolExecutor, comes with the process pool.)
local futures = require "concurrent.futures"
local time = require "time"
local ThreadPoolExecutor = futures.ThreadPoolExecutor

local function tache(n)
  time.sleep(0.1)
  return n * n
end

local range10 = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}

-- Par threads (I/O-bound)
local t0 = time.perf_counter()
do
  local pool <close> = ThreadPoolExecutor{max_workers = 4}
  local futurs = {}
  for _, i in ipairs(range10) do futurs[#futurs + 1] = pool:submit(tache, i) end
  local resultats = {}
  for i, f in ipairs(futurs) do resultats[i] = f:result() end
  print("submit : " .. table.concat(resultats, ", "))
end
print(("  en %.2f s (10 tâches de 0.1 s, 4 threads)"):format(time.perf_counter() - t0))

-- Version courte avec map
t0 = time.perf_counter()
do
  local pool <close> = ThreadPoolExecutor{max_workers = 4}
  local resultats = pool:map(tache, range10)
  print("map    : " .. table.concat(resultats, ", "))
end
print(("  en %.2f s"):format(time.perf_counter() - t0))
