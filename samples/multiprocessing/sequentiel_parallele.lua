-- Cours « 8.1 Threading et multiprocessing » : Processus simple
-- (comparaison séquentiel vs parallèle avec Pool.starmap)
--
-- The four sums of squares run one after the other, then in a Pool (one
-- worker per core) with starmap; on 2 cores the parallel run takes about
-- half the time. `with multiprocessing.Pool() as pool:` is a
-- to-be-closed variable. The tasks are {name, from, to} arrays, of
-- 5,000,000 numbers each instead of 1,000,000 (so that the work outweighs
-- starting the pool), summed as floats: Lua's integers are 64-bit and the
-- sums would overflow (Python's integers have no limit).
local multiprocessing = require "multiprocessing"
local time = require "time"

local function calcul_intensif(nom, debut, fin)
  local pid = os.getpid()
  print(("🔄 %s (PID %d): calcul de %d à %d"):format(nom, pid, debut, fin))
  local total = 0.0
  for i = debut, fin - 1 do
    total = total + i * i
  end
  print(("✅ %s (PID %d): résultat = %.0f"):format(nom, pid, total))
  return total
end

local function demo_multiprocessing()
  local taches = {
    {"Tâche 1", 0, 5000000},
    {"Tâche 2", 5000000, 10000000},
    {"Tâche 3", 10000000, 15000000},
    {"Tâche 4", 15000000, 20000000},
  }
  print("💻 COMPARAISON SÉQUENTIEL vs PARALLÈLE")
  print(("-"):rep(45))

  print("\n🐌 Exécution séquentielle:")
  local start_time = time.time()
  local resultats_seq = {}
  for _, t in ipairs(taches) do
    resultats_seq[#resultats_seq + 1] = calcul_intensif(table.unpack(t))
  end
  local temps_seq = time.time() - start_time
  print(("Temps séquentiel: %.2fs"):format(temps_seq))

  print("\n🚀 Exécution parallèle:")
  start_time = time.time()
  local resultats_par
  do
    local pool <close> = multiprocessing.Pool()
    resultats_par = pool:starmap(calcul_intensif, taches)
  end
  local temps_par = time.time() - start_time
  print(("Temps parallèle: %.2fs"):format(temps_par))
  print(("Accélération: %.1fx"):format(temps_seq / temps_par))

  local identiques = #resultats_seq == #resultats_par
  for i = 1, #resultats_seq do
    identiques = identiques and resultats_seq[i] == resultats_par[i]
  end
  print(("\nRésultats identiques: %s"):format(identiques and "True" or "False"))
end

if __name__ == "__main__" then demo_multiprocessing() end
