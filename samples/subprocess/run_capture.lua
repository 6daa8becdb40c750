-- Cours « Concurrence avancée » 20.7 subprocess — lancer des commandes : Commande simple
--
-- subprocess.run(["ls", "-l"], capture_output=True, text=True) : les
-- arguments de mot-clé deviennent une table d'options. La sortie est une
-- chaîne Lua (des octets ; text = true y change seulement \r\n en \n).
local subprocess = require "subprocess"

-- Commande simple
local resultat = subprocess.run({"ls", "-l"}, {capture_output = true, text = true})
print(resultat.stdout)
print(resultat.returncode)
