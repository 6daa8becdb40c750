-- Cours « La concurrence en Python » (diaporama), Application du multithreading : Téléchargement d'images sur le web (séquentiel / multithreadé)
--
-- Le code du diaporama n'est pas dans le texte du cours ; cet exemple suit
-- ce que montrent ses deux colonnes : télécharger une liste d'images l'une
-- après l'autre, puis avec un thread par image, et comparer les durées.
-- Pas de réseau ici : chaque téléchargement est simulé par time.sleep (0,2
-- à 0,5 s), qui relâche le GIL comme une vraie attente réseau.
local threading = require "threading"
local time = require "time"

local IMAGES = {}
for i = 1, 8 do IMAGES[i] = ("https://picsum.photos/id/%d/800/600.jpg"):format(i * 10) end

-- Durées simulées, tirées une fois pour que les deux versions fassent la
-- même chose.
local DUREES = {}
for i = 1, #IMAGES do DUREES[i] = 0.2 + 0.3 * math.random() end

local function telecharger_image(i)
  time.sleep(DUREES[i])                 -- requests.get(url).content, simulé
  local nom = ("image_%d.jpg"):format(i)
  print(("  %s téléchargée (%.2fs)"):format(nom, DUREES[i]))
end

print("Séquentiel :")
local t0 = time.perf_counter()
for i = 1, #IMAGES do telecharger_image(i) end
local seq = time.perf_counter() - t0
print(("=> %d images en %.2fs\n"):format(#IMAGES, seq))

print("Multithreadé :")
t0 = time.perf_counter()
local threads = {}
for i = 1, #IMAGES do
  threads[i] = threading.Thread{target = telecharger_image, args = {i}}
  threads[i]:start()
end
for _, t in ipairs(threads) do t:join() end
local par = time.perf_counter() - t0
print(("=> %d images en %.2fs, %.1fx plus vite"):format(#IMAGES, par, seq / par))
