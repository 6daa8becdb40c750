-- Cours « Concurrence avancée » 20.4 concurrent.futures : par processes (CPU-bound),
-- as_completed, wait(FIRST_COMPLETED)
--
-- The same Executor API as the thread pool. {future = i} is a Lua table
-- keyed by futures; `try/except` is a pcall. tache(3) fails here, to show
-- the except branch. The tasks sleep 0.1 s as the course's do.
local futures = require "concurrent.futures"
local time = require "time"

local function tache(n)
  time.sleep(0.1)
  if n == 3 then error(ValueError("la tâche 3 a échoué")) end
  return n * n
end

if __name__ == "__main__" then
  do  -- Par processes (CPU-bound)
    local pool <close> = futures.ProcessPoolExecutor{max_workers = 4}
    local ok, err = pcall(pool.map, pool, tache, {0, 1, 2})
    print("map:", ok and table.concat(err, ", ") or tostring(err))
  end
  do  -- as_completed — traiter au fur et à mesure
    local pool <close> = futures.ProcessPoolExecutor()
    local futurs = {}
    for i = 0, 9 do futurs[pool:submit(tache, i)] = i end
    for futur in futures.as_completed(futurs) do
      local index = futurs[futur]
      local ok, resultat = pcall(futur.result, futur)
      if ok then print(("Tâche %d terminée: %d"):format(index, resultat))
      else print(("Tâche %d échouée: %s"):format(index, tostring(resultat))) end
    end
    -- wait — attendre un sous-ensemble
    local fs = {}
    for i = 0, 9 do fs[#fs + 1] = pool:submit(tache, i) end
    local termines = futures.wait(fs, {return_when = futures.FIRST_COMPLETED})
    local n = 0
    for _ in pairs(termines) do n = n + 1 end
    print("wait(FIRST_COMPLETED): " .. n .. " terminée(s) au moins")
  end
end
