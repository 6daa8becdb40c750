-- Cours « Concurrence avancée » 20.4, concurrent.futures : as_completed — traiter au fur et à mesure
--
-- The course uses a ProcessPoolExecutor; this sample uses the thread pool
-- (the process pool comes later, with the same API). The dict
-- {future: i} is a Lua table keyed by futures, which as_completed accepts
-- as it is; `try/except Exception as e` is a pcall. Here task 3 fails, to
-- show the except branch, and the tasks take different times so that they
-- finish out of order.
local futures = require "concurrent.futures"
local time = require "time"

local function tache(n)
  time.sleep(0.05 * (10 - n))
  if n == 3 then error(ValueError("la tâche 3 a échoué")) end
  return n * n
end

do
  local pool <close> = futures.ThreadPoolExecutor()
  local futurs = {}
  for i = 0, 9 do futurs[pool:submit(tache, i)] = i end
  for futur in futures.as_completed(futurs) do
    local index = futurs[futur]
    local ok, resultat = pcall(futur.result, futur)
    if ok then
      print(("Tâche %d terminée: %d"):format(index, resultat))
    else
      print(("Tâche %d échouée: %s"):format(index, tostring(resultat)))
    end
  end
end
