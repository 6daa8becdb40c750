-- Cours « 8.1 Threading et multiprocessing », Module threading : Communication avec Queue
--
-- Un producteur et un consommateur qui dorment des secondes entières
-- (time.sleep) : le producteur fabrique un élément par seconde, le
-- consommateur en traite un en 1,5 s, puis s'arrête après 2 s sans
-- élément (q:get avec timeout, comme dans le cours). Chaque ligne montre
-- l'instant, compté depuis le début par time.monotonic().
--
-- Lancé simplement, le programme dure vraiment 7,5 s et les instants
-- sont approchés (1.001, 2.503...). Sous l'ordonnanceur déterministe
-- (`gilua --sched=random samples/sched/virtual_time.lua`), le temps est
-- virtuel : il n'avance que lorsque tous les threads attendent, et saute
-- alors à la prochaine échéance. Le programme finit en un clin d'œil et
-- les instants sont exacts : 1.000, 2.500, 7.500.
--
-- Le cours tire les durées au hasard (random.uniform) ; ici elles sont
-- fixes, pour que les instants se lisent d'un coup d'œil.
local threading = require "threading"
local queue = require "queue"
local time = require "time"

local NB_ITEMS = 3
local debut = time.monotonic()

local function instant()
  return ("%6.3f s"):format(time.monotonic() - debut)
end

-- Produit des éléments et les place dans la queue.
local function producteur(q, nom, nb_items)
  for i = 1, nb_items do
    time.sleep(1)                       -- Simuler du travail
    local item = ("%s_item_%d"):format(nom, i)
    q:put(item)
    print(("%s  📦 Produit: %s"):format(instant(), item))
  end
  print(("%s  ✅ %s a terminé la production"):format(instant(), nom))
end

-- Consomme des éléments de la queue.
local function consommateur(q, nom)
  while true do
    local ok, item = pcall(q.get, q, {timeout = 2})
    if not ok then
      if not queue.Empty:is(item) then error(item, 0) end
      print(("%s  ⏰ %s: timeout, arrêt"):format(instant(), nom))
      break
    end
    print(("%s  🔄 %s traite: %s"):format(instant(), nom, item))
    time.sleep(1.5)                     -- Simuler le traitement
    print(("%s  ✅ %s a terminé: %s"):format(instant(), nom, item))
    q:task_done()
  end
end

local q = queue.Queue(5)
local p = threading.Thread{target = producteur, args = {q, "Prod1", NB_ITEMS}}
local c = threading.Thread{target = consommateur, args = {q, "Cons1"}}
p:start(); c:start()
p:join(); c:join()
print(("%s  fin"):format(instant()))
