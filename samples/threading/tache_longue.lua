-- Cours « 8.1 Threading et multiprocessing », Module threading : Création d'un thread simple
--
-- Deux tâches de 3 étapes, d'abord l'une après l'autre, puis dans deux
-- threads. Chaque étape dort (time.sleep relâche le GIL), donc les threads
-- se recouvrent : accélération d'environ 2x.
-- Le cours dort 1 s par étape ; raccourci ici à 0,5 s (séquentiel ~3 s,
-- threads ~1,5 s au lieu de 6 s et 3 s).
local threading = require "threading"
local time = require "time"

local ETAPE = 0.5                         -- 1 s dans le cours

-- Simule une tâche qui prend du temps.
local function tache_longue(nom, duree)
  print(("🚀 %s commencée"):format(nom))
  for i = 0, duree - 1 do
    print(("⏳ %s: étape %d/%d"):format(nom, i + 1, duree))
    time.sleep(ETAPE)
  end
  print(("✅ %s terminée"):format(nom))
end

-- Exécution séquentielle (lente)
print("=== EXÉCUTION SÉQUENTIELLE ===")
local start_time = time.time()

tache_longue("Tâche A", 3)
tache_longue("Tâche B", 3)

local sequential_time = time.time() - start_time
print(("Temps total séquentiel: %.1fs\n"):format(sequential_time))

-- Exécution avec threads (plus rapide)
print("=== EXÉCUTION AVEC THREADS ===")
start_time = time.time()

-- Créer les threads
local thread1 = threading.Thread{target = tache_longue, args = {"Tâche A", 3}}
local thread2 = threading.Thread{target = tache_longue, args = {"Tâche B", 3}}

-- Démarrer les threads
thread1:start()
thread2:start()

-- Attendre que tous les threads se terminent
thread1:join()
thread2:join()

local concurrent_time = time.time() - start_time
print(("Temps total concurrent: %.1fs"):format(concurrent_time))
print(("Accélération: %.1fx"):format(sequential_time / concurrent_time))
