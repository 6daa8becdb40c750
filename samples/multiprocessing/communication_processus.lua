-- Cours « 8.1 Threading et multiprocessing » : Communication entre processus
--
-- Workers read an input queue until a nil (Python's None) stop signal and
-- put {name, result} on an output queue. The course catches
-- multiprocessing.TimeoutError around get(timeout=2), but Queue.get raises
-- queue.Empty on a timeout (in Python too): the sample catches that.
-- Work takes 0.3-0.9 s instead of 1-3 s.
local multiprocessing = require "multiprocessing"
local queue = require "queue"
local time = require "time"

local function travailleur(nom, queue_entree, queue_sortie)
  local pid = multiprocessing.current_process().pid
  math.randomseed(pid)
  print(("👷 %s (PID %d) démarré"):format(nom, pid))
  while true do
    local ok, tache = pcall(queue_entree.get, queue_entree, {timeout = 2})
    if not ok then
      if queue.Empty:is(tache) then
        print(("⏰ %s timeout"):format(nom))
        break
      end
      error(tache, 0)
    end
    if tache == nil then  -- Signal d'arrêt
      print(("🛑 %s arrêté"):format(nom))
      break
    end
    print(("🔄 %s traite: %s"):format(nom, tache))
    time.sleep(0.3 + math.random() * 0.6)
    queue_sortie:put({nom, "Résultat de " .. tache})
    print(("✅ %s terminé: %s"):format(nom, tache))
  end
end

local function demo_communication_processus()
  print("🔄 COMMUNICATION ENTRE PROCESSUS")
  print(("-"):rep(35))
  local queue_entree = multiprocessing.Queue()
  local queue_sortie = multiprocessing.Queue()
  local taches = {}
  for i = 1, 7 do taches[i] = "Tâche_" .. i end
  for _, tache in ipairs(taches) do queue_entree:put(tache) end

  local nb_workers = 3
  local processus = {}
  for i = 1, nb_workers do
    local p = multiprocessing.Process{target = travailleur,
      args = {"Worker-" .. i, queue_entree, queue_sortie}}
    processus[#processus + 1] = p
    p:start()
  end

  local resultats = {}
  for _ = 1, #taches do
    local r = queue_sortie:get()
    resultats[#resultats + 1] = r
    print(("📥 Reçu de %s: %s"):format(r[1], r[2]))
  end

  for _ = 1, nb_workers do queue_entree:put(nil) end  -- Signal d'arrêt
  for _, p in ipairs(processus) do p:join() end
  print(("\n🎉 Traitement terminé! %d résultats collectés"):format(#resultats))
end

if __name__ == "__main__" then demo_communication_processus() end
