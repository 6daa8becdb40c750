-- Cours « Concurrence avancée » 20.5 multiprocessing : Manager — partage objets complexes
--
-- `with Manager() as manager:` is a to-be-closed variable (the server
-- process stops at the end of the scope). d["modifié"] = True and
-- lst.append(42) go to the manager's server; print shows the contents as
-- Python does: {'modifié': True} [42].
local multiprocessing = require "multiprocessing"
local Process, Manager = multiprocessing.Process, multiprocessing.Manager

local function travailleur(d, lst)
  d["modifié"] = true
  lst:append(42)
end

if __name__ == "__main__" then
  local manager <close> = Manager()
  local d = manager:dict()
  local lst = manager:list()
  local p = Process{target = travailleur, args = {d, lst}}
  p:start()
  p:join()
  print(d, lst)
end
