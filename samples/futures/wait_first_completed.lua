-- Cours « Concurrence avancée » 20.4, concurrent.futures : wait — attendre un sous-ensemble (return_when=FIRST_COMPLETED)
--
-- `terminés, _ = wait(futurs, return_when=FIRST_COMPLETED)` is
-- `local termines = futures.wait(futurs, {return_when = futures.FIRST_COMPLETED})`;
-- the two results are sets: tables keyed by future. The course's snippet
-- reuses the pool of the previous example; this one makes its own, with
-- tasks of different lengths so that one finishes first.
local futures = require "concurrent.futures"
local time = require "time"

local function tache(n)
  time.sleep(0.1 * (n + 1))
  return n * n
end

local pool <close> = futures.ThreadPoolExecutor{max_workers = 10}
local futurs = {}
for i = 0, 9 do futurs[#futurs + 1] = pool:submit(tache, i) end

local t0 = time.perf_counter()
local termines, pas_termines = futures.wait(futurs, {return_when = futures.FIRST_COMPLETED})
local n_termines, n_restants = 0, 0
for f in pairs(termines) do
  n_termines = n_termines + 1
  print("terminé : résultat " .. f:result())
end
for _ in pairs(pas_termines) do n_restants = n_restants + 1 end
print(("%d terminé(s), %d en cours, après %.2f s"):format(
      n_termines, n_restants, time.perf_counter() - t0))

-- Puis tous (ALL_COMPLETED, le défaut)
termines = futures.wait(futurs)
local n = 0
for _ in pairs(termines) do n = n + 1 end
print(("%d terminés après %.2f s"):format(n, time.perf_counter() - t0))
