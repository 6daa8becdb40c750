-- Cours « Concurrence avancée » 20.5 multiprocessing : Pool
--
-- `with Pool(processes=4) as pool:` is a to-be-closed variable (closing
-- terminates the pool, as Python's `with`); range(100) is the array 0..99;
-- map returns an array, map_async an AsyncResult whose get() waits.
local multiprocessing = require "multiprocessing"

local function carre(x)
  return x * x
end

if __name__ == "__main__" then
  local valeurs = {}
  for i = 0, 99 do valeurs[#valeurs + 1] = i end
  local pool <close> = multiprocessing.Pool{processes = 4}
  local resultats = pool:map(carre, valeurs)
  local resultats_async = pool:map_async(carre, valeurs)
  print(table.concat(resultats_async:get(), ", "))
  print(#resultats .. " résultats, le dernier: " .. resultats[#resultats])
end
