-- Cours « 8.1 Threading et multiprocessing », Exercice 1 : Téléchargeur d'URLs
--
-- Le cours télécharge quatre URLs de httpbin.org avec requests, un thread
-- par URL. Ici il n'y a pas de réseau : simuler_get() imite requests.get
-- avec time.sleep (une latence de 0,1 à 0,3 s, plus 1 s pour /delay/1, qui
-- fait attendre le serveur une seconde) et renvoie un statut et une taille
-- vraisemblables. Comme une vraie attente réseau, time.sleep relâche le
-- GIL : les quatre « téléchargements » se recouvrent, et le total dure
-- autant que le plus long, pas la somme.
local threading = require "threading"
local time = require "time"

-- Réponses simulées : statut HTTP, taille du corps, attente du serveur (s).
local REPONSES = {
  ["https://httpbin.org/delay/1"]     = {status = 200, taille = 318, attente = 1},
  ["https://httpbin.org/status/200"]  = {status = 200, taille = 0,   attente = 0},
  ["https://httpbin.org/json"]        = {status = 200, taille = 429, attente = 0},
  ["https://httpbin.org/user-agent"]  = {status = 200, taille = 45,  attente = 0},
}

-- Imite requests.get(url, timeout=10) : dort le temps du réseau.
local function simuler_get(url, timeout)
  local r = REPONSES[url]
  if not r then error("ConnectionError: hôte inconnu pour " .. url, 0) end
  local duree = 0.1 + 0.2 * math.random() + r.attente
  if duree > timeout then
    time.sleep(timeout)
    error(("ReadTimeout: %s (timeout=%s)"):format(url, timeout), 0)
  end
  time.sleep(duree)
  return {status_code = r.status, content = ("x"):rep(r.taille)}
end

-- Télécharge une URL et stocke le résultat.
local function telecharger_url(url, resultats, index)
  local ok, err = pcall(function()
    print(("📥 Téléchargement de %s"):format(url))
    local start_time = time.time()

    local response = simuler_get(url, 10)
    local duree = time.time() - start_time

    resultats[index] = {
      url = url,
      status = response.status_code,
      taille = #response.content,
      duree = duree,
    }
    print(("✅ %s: %d (%d bytes)"):format(url, response.status_code, #response.content))
  end)
  if not ok then
    print(("❌ %s: Erreur - %s"):format(url, tostring(err)))
    resultats[index] = {url = url, erreur = tostring(err)}
  end
end

-- Télécharge plusieurs URLs en parallèle.
local function telecharger_urls_concurrent(urls)
  local resultats = {}
  local threads = {}

  -- Créer et démarrer les threads
  for i, url in ipairs(urls) do
    local t = threading.Thread{target = telecharger_url, args = {url, resultats, i}}
    threads[#threads + 1] = t
    t:start()
  end

  -- Attendre tous les threads
  for _, t in ipairs(threads) do t:join() end

  return resultats
end

-- Test
local urls_test = {
  "https://httpbin.org/delay/1",
  "https://httpbin.org/status/200",
  "https://httpbin.org/json",
  "https://httpbin.org/user-agent",
}

print("🌐 Téléchargement concurrent d'URLs (simulé, sans réseau)")
local t0 = time.time()
local resultats = telecharger_urls_concurrent(urls_test)
local total = time.time() - t0

print("\n📊 Résultats:")
local somme = 0
for _, r in ipairs(resultats) do
  if r.erreur then
    print(("  ❌ %s: %s"):format(r.url, r.erreur))
  else
    print(("  ✅ %s: %d (%.2fs)"):format(r.url, r.status, r.duree))
    somme = somme + r.duree
  end
end
print(("\nTemps total: %.2fs, somme des durées: %.2fs (les attentes se recouvrent)")
      :format(total, somme))
