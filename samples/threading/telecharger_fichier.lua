-- Cours « 8.1 Threading et multiprocessing », Module threading : Thread avec classe personnalisée
--
-- TelechargerFichier dérive de Thread ; le téléchargement est simulé par
-- des pauses de 0,1 à 0,3 s par Mo, comme dans le cours. Le thread
-- principal affiche le statut de chacun toutes les secondes.
local threading = require "threading"
local time = require "time"

local function uniform(a, b) return a + (b - a) * math.random() end

-- Thread personnalisé pour télécharger un fichier.
local TelechargerFichier = threading.Thread:extend()

function TelechargerFichier:init(nom_fichier, taille_mo)
  threading.Thread.init(self)
  self.nom_fichier = nom_fichier
  self.taille_mo = taille_mo
  self.progression = 0
  self.termine = false
end

-- Méthode principale du thread.
function TelechargerFichier:run()
  print(("📥 Début téléchargement: %s"):format(self.nom_fichier))
  -- Simuler le téléchargement
  for i = 0, self.taille_mo - 1 do
    time.sleep(uniform(0.1, 0.3))         -- Vitesse variable
    self.progression = (i + 1) / self.taille_mo * 100
    print(("📊 %s: %.1f%%"):format(self.nom_fichier, self.progression))
  end
  self.termine = true
  print(("✅ %s téléchargé!"):format(self.nom_fichier))
end

-- Retourne le statut actuel du téléchargement.
function TelechargerFichier:get_statut()
  if self.termine then
    return "Terminé"
  elseif self.progression > 0 then
    return ("En cours (%.1f%%)"):format(self.progression)
  else
    return "En attente"
  end
end

-- Test des téléchargements concurrents
local function demo_telechargements()
  local fichiers = {
    {"video.mp4", 5},
    {"document.pdf", 2},
    {"image.jpg", 1},
    {"archive.zip", 3},
  }
  local threads = {}

  -- Créer et démarrer les threads
  for _, f in ipairs(fichiers) do
    local thread = TelechargerFichier(f[1], f[2])
    threads[#threads + 1] = thread
    thread:start()
  end

  -- Surveillance périodique : any(not t.termine for t in threads)
  local function un_en_cours()
    for _, t in ipairs(threads) do
      if not t.termine then return true end
    end
    return false
  end
  while un_en_cours() do
    time.sleep(1)
    print("\n📋 Statut des téléchargements:")
    for _, t in ipairs(threads) do
      print(("  %s: %s"):format(t.nom_fichier, t:get_statut()))
    end
  end

  -- Attendre la fin de tous les threads
  for _, t in ipairs(threads) do t:join() end

  print("\n🎉 Tous les téléchargements terminés!")
end

demo_telechargements()
