-- Cours « Concurrence avancée » 20.2, threading : Création basique
--
-- Cinq threads exécutent travail(i) ; le thread principal les attend avec
-- join(). L'ordre des lignes dépend de l'ordonnancement, comme en Python.
local threading = require "threading"

local function travail(nom)
  print(("Thread %s démarre"):format(nom))
end

local threads = {}
for i = 0, 4 do                          -- range(5)
  local t = threading.Thread{target = travail, args = {i}}
  threads[#threads + 1] = t
  t:start()
end

for _, t in ipairs(threads) do
  t:join()                               -- attendre la fin
end
