-- Cours « 8.1 Threading et multiprocessing », Communication avec Queue : pattern producteur-consommateur (Queue(maxsize=5), get(timeout=2), queue.Empty, q.join())
--
-- `except queue.Empty:` becomes a pcall and `queue.Empty:is(err)`;
-- `q.get(timeout=2)` is `q:get{timeout = 2}`. The random sleeps of the
-- course are kept (0.1-0.5 s to produce, 0.2-0.8 s to consume), so the run
-- takes 4 to 6 s, the last 2 s being the consumers' timeout.
local threading = require "threading"
local queue = require "queue"
local time = require "time"

local function uniform(a, b) return a + (b - a) * math.random() end

local function producteur(q, nom, nb_items)
  -- Produit des éléments et les place dans la queue.
  for i = 1, nb_items do
    local item = ("%s_item_%d"):format(nom, i)
    time.sleep(uniform(0.1, 0.5))   -- simuler du travail
    q:put(item)
    print("📦 Produit: " .. item)
  end
  print(("✅ %s a terminé la production"):format(nom))
end

local function consommateur(q, nom)
  -- Consomme des éléments de la queue.
  while true do
    -- Attendre un élément (timeout pour éviter de bloquer)
    local ok, item = pcall(q.get, q, {timeout = 2})
    if ok then
      print(("🔄 %s traite: %s"):format(nom, item))
      time.sleep(uniform(0.2, 0.8))   -- simuler le traitement
      print(("✅ %s a terminé: %s"):format(nom, item))
      q:task_done()
    elseif queue.Empty:is(item) then
      print(("⏰ %s: timeout, arrêt"):format(nom))
      break
    else
      error(item, 0)
    end
  end
end

local function demo_producer_consumer()
  -- Démonstration du pattern Producteur-Consommateur.
  print("🏭 PATTERN PRODUCTEUR-CONSOMMATEUR")
  print(("-"):rep(40))

  -- Créer une queue thread-safe
  local q = queue.Queue{maxsize = 5}  -- Limite de 5 éléments

  -- Créer les producteurs
  local producteur1 = threading.Thread{target = producteur, args = {q, "Prod1", 3}}
  local producteur2 = threading.Thread{target = producteur, args = {q, "Prod2", 4}}

  -- Créer les consommateurs
  local consommateur1 = threading.Thread{target = consommateur, args = {q, "Cons1"}}
  local consommateur2 = threading.Thread{target = consommateur, args = {q, "Cons2"}}

  -- Démarrer tous les threads
  producteur1:start()
  producteur2:start()
  consommateur1:start()
  consommateur2:start()

  -- Attendre que les producteurs terminent
  producteur1:join()
  producteur2:join()

  -- Attendre que tous les éléments soient traités
  q:join()

  print("🎉 Tous les éléments ont été traités!")
end

demo_producer_consumer()
