-- Cours « 8.1 Threading et multiprocessing », Module threading : Synchronisation avec Lock
--
-- race.lua avec le verrou du cours (incrementer_securise) : la lecture et
-- l'écriture se font sous le verrou, aucun autre thread ne peut passer
-- entre elles, quel que soit l'entrelacement. `gilua --explore=50
-- samples/sched/race_lock.lua` ne trouve qu'une issue : compteur = 4000.
-- `with lock:` devient `local _ <close> = lock:acquire()`, qui libère le
-- verrou à la fin de chaque tour de boucle.
local threading = require "threading"

local NB_THREADS = 4
local NB_ITERATIONS = 1000

compteur = 0
local lock = threading.Lock()

-- Incrémente avec protection par lock.
local function incrementer_securise(nb_iterations)
  for _ = 1, nb_iterations do
    local _ <close> = lock:acquire()      -- Acquisition automatique du verrou
    local temp = compteur
    temp = temp + 1
    compteur = temp
  end
end

local threads = {}
for i = 1, NB_THREADS do
  threads[i] = threading.Thread{target = incrementer_securise,
                                args = {NB_ITERATIONS}}
  threads[i]:start()
end
for _, t in ipairs(threads) do t:join() end

print(("compteur = %d"):format(compteur))  -- 4000, toujours
