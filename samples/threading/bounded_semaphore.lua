-- Cours « La concurrence en Python » (diaporama), Gestion de la concurrence : Sémaphore : BoundedSemaphore
--
-- Le code du diaporama n'est pas dans le texte du cours. Un BoundedSemaphore
-- est un Semaphore qui refuse d'être libéré plus de fois qu'il n'a été
-- acquis : l'erreur de programmation (un release() de trop) lève ValueError
-- au lieu d'augmenter silencieusement le nombre de places.
local threading = require "threading"
local time = require "time"

local places = threading.BoundedSemaphore(2)   -- 2 connexions à la fois

local function connexion(i)
  local _ <close> = places:acquire()
  print(("client %d connecté"):format(i))
  time.sleep(0.3)
  print(("client %d déconnecté"):format(i))
end

local threads = {}
for i = 1, 4 do
  threads[i] = threading.Thread{target = connexion, args = {i}}
  threads[i]:start()
end
for _, t in ipairs(threads) do t:join() end

-- Un release() de trop : Semaphore l'accepte, BoundedSemaphore non.
local simple = threading.Semaphore(2)
simple:release()
print("Semaphore(2) après un release() de trop : accepté (3 places désormais)")

local ok, err = pcall(places.release, places)
print(("BoundedSemaphore(2) après un release() de trop : %s")
      :format(ok and "accepté ?!" or tostring(err)))
