-- Cours « Concurrence avancée » 20.7 subprocess — lancer des commandes : Avec shell (attention sécurité)
--
-- Avec shell = true, la commande est une seule chaîne donnée à /bin/sh -c,
-- qui interprète le tube « | ». Sans capture, l'enfant écrit directement
-- sur notre sortie standard : « 6 » (hello + le saut de ligne).
local subprocess = require "subprocess"

-- Avec shell (attention sécurité)
subprocess.run("echo hello | wc -c", {shell = true})
