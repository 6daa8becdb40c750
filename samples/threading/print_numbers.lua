-- Cours « La programmation concurrente avec Python », Multithreading : print_numbers
local threading = require "threading" -- le module threading, pour la gestion des threads

local function print_numbers()
  -- imprime les nombres de 1 à 5
  for i = 1, 5 do
    print(i) -- imprime le nombre courant dans la boucle
  end
end

-- Création d'un thread pour exécuter la fonction print_numbers
local thread = threading.Thread{target = print_numbers}
thread:start() -- démarre le thread, qui appelle print_numbers
thread:join()  -- attend que le thread se termine avant de continuer
