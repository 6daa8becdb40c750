-- Cours « Concurrence avancée » 20.7 subprocess — lancer des commandes : Timeout
--
-- try/except subprocess.TimeoutExpired devient pcall et
-- subprocess.TimeoutExpired:is(err). run tue l'enfant (sleep) à l'échéance
-- et l'attend avant de lever l'exception : il ne reste pas de zombie.
-- Le programme dure donc 2 s, pas 10.
local subprocess = require "subprocess"

-- Timeout
local ok, err = pcall(subprocess.run, {"sleep", "10"}, {timeout = 2})
if not ok then
  if subprocess.TimeoutExpired:is(err) then
    print("Timeout")
  else
    error(err, 0)              -- une autre erreur : on la laisse passer
  end
end
