-- Cours « 8.1 Threading et multiprocessing », Exercice 3 : Monitor de système
--
-- Deux threads : l'un collecte les métriques (CPU, mémoire, disque) en
-- continu, l'autre vérifie les seuils d'alerte ; un Lock protège les
-- données qu'ils partagent. psutil n'existe pas en Lua, donc :
--   * CPU : /proc/stat lu deux fois à 1 s d'intervalle, comme
--     psutil.cpu_percent(interval=1) (100 % moins la part de temps inactif) ;
--   * mémoire : /proc/meminfo, (MemTotal - MemAvailable) / MemTotal, la
--     formule de psutil.virtual_memory().percent ;
--   * disque : la commande `df -P /` (utilisé / (utilisé + disponible), la
--     formule de psutil.disk_usage('/').percent).
-- `deque(maxlen=60)` devient une petite file bornée. Raccourci : le cours
-- surveille 15 s avec une vérification des alertes toutes les 5 s ; ici
-- 4 s et toutes les 2 s.
local threading = require "threading"
local time = require "time"

local DUREE = 4                 -- monitor.demarrer(15) dans le cours
local PERIODE_ALERTES = 2       -- 5 s dans le cours

-- deque(maxlen=n) : une file qui oublie ses plus vieux éléments.
local function deque(maxlen)
  return {maxlen = maxlen}
end
local function ajouter(d, v)
  d[#d + 1] = v
  if #d > d.maxlen then table.remove(d, 1) end
end

-- Temps cumulés du processeur : total et inactif (idle + iowait).
local function lire_proc_stat()
  local f = assert(io.open("/proc/stat"))
  local ligne = f:read("l")
  f:close()
  local v = {}
  for n in ligne:gmatch("%d+") do v[#v + 1] = tonumber(n) end
  local total = 0
  for i = 1, math.min(#v, 8) do total = total + v[i] end   -- sans guest
  return total, v[4] + (v[5] or 0)
end

-- psutil.cpu_percent(interval=1) : bloque 1 s et mesure.
local function cpu_percent(interval)
  local t1, i1 = lire_proc_stat()
  time.sleep(interval)
  local t2, i2 = lire_proc_stat()
  if t2 == t1 then return 0.0 end
  return 100 * (1 - (i2 - i1) / (t2 - t1))
end

-- psutil.virtual_memory().percent
local function memoire_percent()
  local info = {}
  for ligne in io.lines("/proc/meminfo") do
    local cle, kb = ligne:match("^(%w+):%s+(%d+)")
    if cle then info[cle] = tonumber(kb) end
  end
  local dispo = info.MemAvailable or (info.MemFree + (info.Cached or 0))
  return 100 * (info.MemTotal - dispo) / info.MemTotal
end

-- psutil.disk_usage('/').percent, d'après df.
local function disque_percent(chemin)
  local p = io.popen("df -P " .. chemin .. " 2>/dev/null")
  if not p then return 0.0 end
  local sortie = p:read("a")
  p:close()
  local utilise, dispo = sortie:match("\n%S+%s+%d+%s+(%d+)%s+(%d+)")
  if not utilise then return 0.0 end
  utilise, dispo = tonumber(utilise), tonumber(dispo)
  if utilise + dispo == 0 then return 0.0 end
  return 100 * utilise / (utilise + dispo)
end

-- Monitor système avec threads pour collecte continue.
local MonitorSysteme = {}
MonitorSysteme.__index = MonitorSysteme

local NOMS = {"cpu", "memoire", "disque"}

function MonitorSysteme.new()
  local self = setmetatable({}, MonitorSysteme)
  self.actif = false
  self.donnees = {
    cpu = deque(60),          -- 60 dernières mesures
    memoire = deque(60),
    disque = deque(60),
  }
  self.lock = threading.Lock()
  return self
end

-- Thread de collecte des métriques.
function MonitorSysteme:collecter_metriques()
  while self.actif do
    local cpu = cpu_percent(1)
    local memoire = memoire_percent()
    local disque = disque_percent("/")

    do
      local _ <close> = self.lock:acquire()
      ajouter(self.donnees.cpu, cpu)
      ajouter(self.donnees.memoire, memoire)
      ajouter(self.donnees.disque, disque)
    end

    print(("📊 CPU: %5.1f%% | RAM: %5.1f%% | Disque: %5.1f%%"):format(cpu, memoire, disque))
  end
end

-- Thread de détection d'alertes.
function MonitorSysteme:detecter_alertes()
  local seuils = {cpu = 80, memoire = 85, disque = 90}
  while self.actif do
    time.sleep(PERIODE_ALERTES)   -- Vérifier régulièrement
    local _ <close> = self.lock:acquire()
    for _, metrique in ipairs(NOMS) do
      local valeurs = self.donnees[metrique]
      if #valeurs > 0 and valeurs[#valeurs] > seuils[metrique] then
        print(("🚨 ALERTE %s: %.1f%%"):format(metrique:upper(), valeurs[#valeurs]))
      end
    end
  end
end

-- Démarre le monitoring.
function MonitorSysteme:demarrer(duree)
  duree = duree or 30
  print(("🖥️ Démarrage du monitoring (%ss)..."):format(duree))
  self.actif = true

  -- Démarrer les threads
  local thread_collecte = threading.Thread{target = self.collecter_metriques, args = {self}}
  local thread_alertes = threading.Thread{target = self.detecter_alertes, args = {self}}
  thread_collecte:start()
  thread_alertes:start()

  -- Arrêter après la durée spécifiée
  time.sleep(duree)
  self.actif = false

  thread_collecte:join()
  thread_alertes:join()

  print("✅ Monitoring terminé")

  -- Afficher un résumé
  local _ <close> = self.lock:acquire()
  for _, metrique in ipairs(NOMS) do
    local valeurs = self.donnees[metrique]
    if #valeurs > 0 then
      local somme, maximum = 0, -math.huge
      for _, v in ipairs(valeurs) do
        somme = somme + v
        if v > maximum then maximum = v end
      end
      print(("  %s: moy=%.1f%%, max=%.1f%%")
            :format(metrique:sub(1, 1):upper() .. metrique:sub(2), somme / #valeurs, maximum))
    end
  end
end

-- Test
local monitor = MonitorSysteme.new()
monitor:demarrer(DUREE)   -- 15 secondes dans le cours
