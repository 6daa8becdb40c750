-- Cours « La concurrence en Python » (diaporama), Gestion de la concurrence : Condition, exemple Producteur / Consommateur
--
-- Le code du diaporama n'est pas dans le texte du cours. Un producteur
-- ajoute des articles dans une liste partagée et prévient par notify() ;
-- le consommateur attend avec wait() tant que la liste est vide. wait()
-- relâche le verrou de la Condition pendant l'attente et le reprend avant
-- de revenir. `with condition:` devient `local _ <close> = condition:acquire()`.
local threading = require "threading"
local time = require "time"

local condition = threading.Condition()
local articles = {}
local FIN = "FIN"

local function producteur()
  for i = 1, 5 do
    time.sleep(0.2)                     -- fabriquer l'article
    local _ <close> = condition:acquire()
    articles[#articles + 1] = "article " .. i
    print(("producteur : article %d produit"):format(i))
    condition:notify()
  end
  local _ <close> = condition:acquire()
  articles[#articles + 1] = FIN
  condition:notify()
end

local function consommateur()
  while true do
    local article
    do
      local _ <close> = condition:acquire()
      while #articles == 0 do
        print("consommateur : rien à consommer, j'attends")
        condition:wait()
      end
      article = table.remove(articles, 1)
    end
    if article == FIN then break end
    print(("consommateur : %s consommé"):format(article))
  end
  print("consommateur : fin")
end

local c = threading.Thread{target = consommateur, name = "consommateur"}
local p = threading.Thread{target = producteur, name = "producteur"}
c:start(); p:start()
p:join(); c:join()
