-- Cours « Concurrence avancée » 20.5 multiprocessing : Value et Array — mémoire partagée
--
-- `with compteur.get_lock():` is `local _ <close> = compteur:get_lock():acquire()`.
-- Prints 10. An Array beside it, indexed 1..n as Lua arrays are.
local multiprocessing = require "multiprocessing"
local Process, Value, Array = multiprocessing.Process, multiprocessing.Value, multiprocessing.Array

local function incrementer(compteur, carres, i)
  local _ <close> = compteur:get_lock():acquire()
  compteur.value = compteur.value + 1
  carres[i] = i * i
end

if __name__ == "__main__" then
  local compteur = Value("i", 0)   -- 'i' = int signé
  local carres = Array("i", 10)
  local procs = {}
  for i = 1, 10 do procs[i] = Process{target = incrementer, args = {compteur, carres, i}} end
  for _, p in ipairs(procs) do p:start() end
  for _, p in ipairs(procs) do p:join() end
  print(compteur.value)
  print(table.concat(carres:totable(), " "))
end
