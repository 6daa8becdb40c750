-- Cours « 8.1 Threading et multiprocessing », Module threading : Synchronisation avec Lock
--
-- La course du cours, telle quelle : quatre threads font
--     temp = compteur; temp += 1; compteur = temp
-- sans verrou. Lancé simplement (`gilua race.lua`), le programme affiche
-- presque toujours 4000 : le GIL ne change de main qu'aux appels, aux
-- retours et aux retours en arrière des boucles, jamais entre la lecture et
-- l'écriture (voir threading/incrementer_dangereux.lua). Le code n'en est
-- pas moins faux, et l'ordonnanceur déterministe le montre : sous
-- `--sched=random`, le GIL peut passer entre deux instructions quelconques,
-- là où la graine le décide, et une mise à jour se perd.
--
--     gilua --explore=50 samples/sched/race.lua
--         les issues possibles, chacune avec la graine qui la rejoue
--     gilua --sched=random --seed=7 samples/sched/race.lua
--         rejoue exactement l'entrelacement de la graine 7
--
-- Le cours fait 5 threads de 1000 itérations ; ici 4 de 1000, pour que
-- 50 exécutions durent peu.
local threading = require "threading"

local NB_THREADS = 4
local NB_ITERATIONS = 1000

-- Variable partagée (dangereuse sans synchronisation)
compteur = 0

-- Incrémente sans protection (race condition).
local function incrementer_dangereux(nb_iterations)
  for _ = 1, nb_iterations do
    -- Opération non-atomique ! Danger !
    local temp = compteur
    temp = temp + 1
    compteur = temp
  end
end

local threads = {}
for i = 1, NB_THREADS do
  threads[i] = threading.Thread{target = incrementer_dangereux,
                                args = {NB_ITERATIONS}}
  threads[i]:start()
end
for _, t in ipairs(threads) do t:join() end

print(("compteur = %d"):format(compteur))  -- attendu : 4000
