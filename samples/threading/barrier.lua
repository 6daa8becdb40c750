-- Cours « La concurrence en Python » (diaporama), Gestion de la concurrence : Barrière : Barrier
--
-- Le code du diaporama n'est pas dans le texte du cours ; cet exemple suit
-- ce qu'il décrit : Barrier bloque tous les threads qui appellent wait()
-- jusqu'à ce que tous soient arrivés, à un endroit précis de run() ;
-- n_waiting donne le nombre de threads qui attendent à la barrière ;
-- join() attend la fin de run().
local threading = require "threading"
local time = require "time"

local NB = 3
local barriere = threading.Barrier(NB)

local Coureur = threading.Thread:extend()

function Coureur:init(nom, preparation)
  threading.Thread.init(self, {name = nom})
  self.preparation = preparation
end

function Coureur:run()
  time.sleep(self.preparation)          -- chacun se prépare à son rythme
  print(("%s prêt, %d déjà à la barrière"):format(self.name, barriere.n_waiting))
  barriere:wait()                       -- tous repartent ensemble
  print(("%s part"):format(self.name))
end

local coureurs = {
  Coureur("coureur-1", 0.1), Coureur("coureur-2", 0.5), Coureur("coureur-3", 0.3),
}
for _, c in ipairs(coureurs) do c:start() end
for _, c in ipairs(coureurs) do c:join() end
print("Tous les coureurs sont partis ensemble")
