-- Cours « Concurrence avancée » 20.2, threading : Verrous (Lock)
--
-- Dix threads incrémentent 100 000 fois un compteur partagé, chaque
-- incrément sous le verrou : `with verrou:` devient une variable
-- to-be-closed, `local _ <close> = verrou:acquire()`, qui libère le verrou
-- à la fin de chaque tour de boucle.
local threading = require "threading"
local Lock = threading.Lock

compteur = 0
local verrou = Lock()

local function incrementer()
  for _ = 1, 100000 do
    local _ <close> = verrou:acquire()
    compteur = compteur + 1
  end
end

local threads = {}
for i = 1, 10 do threads[i] = threading.Thread{target = incrementer} end
for _, t in ipairs(threads) do t:start() end
for _, t in ipairs(threads) do t:join() end

print(compteur)  -- 1000000 (correct grâce au verrou)
