-- Cours « 8.1 Threading et multiprocessing » : Processus simple
-- (comparaison séquentiel vs parallèle avec Pool.starmap)
--
-- The course's four sums of squares, over its own ranges (0 to 1,000,000,
-- ..., 3,000,000 to 4,000,000), run one after the other, then in a Pool
-- (one worker per core) with starmap; on 2 cores the parallel run takes
-- about half the time. `with multiprocessing.Pool() as pool:` is a
-- to-be-closed variable; the tasks are {name, from, to} arrays.
--
-- The results are the course's, exactly, as integers. Lua's integers are
-- 64-bit (Python's have no limit): the first three sums fit, the fourth,
-- 12 333 329 833 333 500 000, is above 2^63 - 1. Lua's integer addition
-- wraps around modulo 2^64, so the 64 bits still hold the exact value,
-- read as an unsigned number: non_signe() prints it so. (Bigger ranges
-- would exceed 2^64 and could not be printed exactly.)
--
-- Lua runs the four million turns in about 20 ms, where CPython takes
-- about 0.3 s: less than it takes to start a pool and far too little to
-- measure a speed-up. So that the comparison measures computing, not
-- starting, each task does its loop REPETITIONS times (the same result
-- each time): about a second of work in all.
--
--     gilua samples/multiprocessing/sequentiel_parallele.lua [repetitions]
local multiprocessing = require "multiprocessing"
local time = require "time"

local REPETITIONS = tonumber(arg and arg[1]) or 40

-- An integer read as unsigned 64-bit, in decimal.
local function non_signe(n)
  if n >= 0 then return ("%d"):format(n) end
  local q = (n >> 1) // 5                 -- n // 10, unsigned (>> is logical)
  return ("%d%d"):format(q, n - q * 10)
end

local function calcul_intensif(nom, debut, fin)
  local pid = os.getpid()
  print(("🔄 %s (PID %d): calcul de %d à %d"):format(nom, pid, debut, fin))
  local total
  for _ = 1, REPETITIONS do
    total = 0
    for i = debut, fin - 1 do
      total = total + i * i
    end
  end
  print(("✅ %s (PID %d): résultat = %s"):format(nom, pid, non_signe(total)))
  return total
end

local function demo_multiprocessing()
  -- Tâches à effectuer
  local taches = {
    {"Tâche 1", 0, 1000000},
    {"Tâche 2", 1000000, 2000000},
    {"Tâche 3", 2000000, 3000000},
    {"Tâche 4", 3000000, 4000000},
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
    -- Lancer tous les calculs en parallèle
    resultats_par = pool:starmap(calcul_intensif, taches)
  end
  local temps_par = time.time() - start_time
  print(("Temps parallèle: %.2fs"):format(temps_par))
  print(("Accélération: %.1fx"):format(temps_seq / temps_par))

  -- Vérifier que les résultats sont identiques
  local identiques = #resultats_seq == #resultats_par
  for i = 1, #resultats_seq do
    identiques = identiques and resultats_seq[i] == resultats_par[i]
  end
  print(("\nRésultats identiques: %s"):format(identiques and "True" or "False"))
end

if __name__ == "__main__" then
  demo_multiprocessing()
end
