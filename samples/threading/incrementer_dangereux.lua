-- Cours « 8.1 Threading et multiprocessing », Module threading : Synchronisation avec Lock
--
-- Cinq threads incrémentent un compteur partagé : d'abord avec le code du
-- cours, sans protection, puis sans protection avec la lecture faite par
-- un appel de fonction, enfin sous un verrou.
--
-- Une précision honnête sur la course (race condition). Le VM de Lua,
-- comme celui de CPython 3.10 et suivants, ne remarque une demande de
-- passage du GIL qu'aux appels, aux retours de fonction et aux retours en
-- arrière des boucles, jamais entre deux instructions ordinaires. Écrit
-- comme dans le cours,
--     local temp = compteur; temp = temp + 1; compteur = temp
-- ne perd donc aucune mise à jour, ni ici ni sous CPython 3.11 (qui affiche
-- « Différence: 0 ») : aucun thread ne peut être interrompu entre la
-- lecture et l'écriture. Le premier test le montre (« Différence: 0 »),
-- même avec 1 000 000 d'itérations par thread. Le code reste faux : il ne
-- tient qu'à un détail du VM, et il suffit d'un appel entre la lecture et
-- l'écriture pour le voir. Dans le deuxième test, la lecture passe par
-- lire_compteur() : au retour de cet appel, le GIL peut changer de main ;
-- un autre thread incrémente alors le compteur pendant jusqu'à 5 ms, et
-- quand le premier reprend, il écrit sa valeur périmée + 1, effaçant tout
-- ce travail : des centaines de milliers de mises à jour perdues. Il faut
-- aussi que les threads se chevauchent sur plusieurs intervalles de 5 ms :
-- le cours fait 1000 itérations par thread, on en fait 1 000 000 (1000
-- durent moins de 5 ms et chaque thread finirait avant le suivant, sans
-- aucune perte). Avec le verrou, aucune perte.
local threading = require "threading"

local NB_ITERATIONS = 1000000             -- 1000 dans le cours, voir plus haut
local NB_THREADS = 5
local ATTENDU = NB_THREADS * NB_ITERATIONS

-- Variable partagée (dangereuse sans synchronisation)
compteur = 0
local lock = threading.Lock()

-- Un appel entre la lecture et l'écriture : c'est là que le GIL peut passer.
local function lire_compteur()
  return compteur
end

-- Le code du cours : incrémente sans protection.
local function incrementer_dangereux_cours(nb_iterations)
  for _ = 1, nb_iterations do
    -- Opération non-atomique ! Danger !
    local temp = compteur
    temp = temp + 1
    compteur = temp
  end
end

-- Incrémente sans protection (race condition), la lecture par un appel.
local function incrementer_dangereux(nb_iterations)
  for _ = 1, nb_iterations do
    -- Opération non-atomique ! Danger !
    local temp = lire_compteur()
    temp = temp + 1
    compteur = temp
  end
end

-- Incrémente avec protection par lock.
local function incrementer_securise(nb_iterations)
  for _ = 1, nb_iterations do
    local _ <close> = lock:acquire()      -- Acquisition automatique du verrou
    local temp = lire_compteur()
    temp = temp + 1
    compteur = temp
  end
end

local function lancer(cible)
  compteur = 0
  local threads = {}
  for i = 1, NB_THREADS do
    local t = threading.Thread{target = cible, args = {NB_ITERATIONS}}
    threads[i] = t
    t:start()
  end
  for _, t in ipairs(threads) do t:join() end
end

-- Teste la différence avec et sans synchronisation.
local function test_synchronisation()
  -- Test sans synchronisation, le code du cours
  print("🔥 Test SANS synchronisation, le code du cours")
  lancer(incrementer_dangereux_cours)
  print(("Résultat attendu: %d"):format(ATTENDU))
  print(("Résultat obtenu: %d"):format(compteur))
  print(("Différence: %d (aucun passage du GIL entre lecture et écriture)\n")
        :format(ATTENDU - compteur))

  -- Test sans synchronisation, la lecture par un appel
  print("🔥 Test SANS synchronisation, lecture par lire_compteur() (race condition)")
  lancer(incrementer_dangereux)
  print(("Résultat attendu: %d"):format(ATTENDU))
  print(("Résultat obtenu: %d"):format(compteur))
  print(("Différence: %d (race condition!)\n"):format(ATTENDU - compteur))

  -- Test avec synchronisation
  print("🔒 Test AVEC synchronisation (sécurisé)")
  lancer(incrementer_securise)
  print(("Résultat attendu: %d"):format(ATTENDU))
  print(("Résultat obtenu: %d"):format(compteur))
  print(compteur == ATTENDU and "✅ Résultat correct avec synchronisation!"
        or "❌ Résultat incorrect !")
end

test_synchronisation()
