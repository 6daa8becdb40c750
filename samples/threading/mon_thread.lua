-- Cours « Concurrence avancée » 20.2, threading : Classe Thread personnalisée
--
-- `class MonThread(threading.Thread)` devient threading.Thread:extend() :
-- init est le constructeur (super().__init__(name=nom) devient
-- threading.Thread.init(self, {name = nom})) et run est redéfinie.
-- (Lua n'accepte pas les accents dans les noms : self.résultat -> self.resultat.)
local threading = require "threading"

local MonThread = threading.Thread:extend()

function MonThread:init(nom)
  threading.Thread.init(self, {name = nom})
  self.resultat = nil
end

function MonThread:run()
  -- sum(range(10_000_000))
  local s = 0
  for i = 0, 10000000 - 1 do s = s + i end
  self.resultat = s
end

local t = MonThread("calc")
t:start()
t:join()
print(t.resultat)          -- 49999995000000
