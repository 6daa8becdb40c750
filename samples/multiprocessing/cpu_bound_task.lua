-- Cours « La programmation concurrente avec Python » : Exemple d'utilisation de multiprocessing
--
-- Two processes run cpu_bound_task (a sum over 10^6 numbers) at the same
-- time, each with its own interpreter and its own GIL.
local multiprocessing = require "multiprocessing"

local function cpu_bound_task()
  local count = 0
  for i = 0, 10 ^ 6 - 1 do
    count = count + i
  end
  print("Task completed")
end

-- Création de deux processus
local process1 = multiprocessing.Process{target = cpu_bound_task}
local process2 = multiprocessing.Process{target = cpu_bound_task}

-- Démarrage des processus
process1:start()
process2:start()

-- Attendre que les processus se terminent
process1:join()
process2:join()
