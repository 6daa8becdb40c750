-- Une file partagée par des interpréteurs : deux producteurs, chacun dans
-- son interpréteur (et son thread), un consommateur dans l'interpréteur
-- principal. Les éléments sont copiés à l'entrée et à la sortie ; la file,
-- elle, est la même partout. nil est le signal de fin de chaque
-- producteur, comme None avec queue.Queue.
local interpreters = require "concurrent.interpreters"

local file = interpreters.create_queue(10)      -- maxsize = 10

local function producteur(q, nom, n)
  for i = 1, n do q:put({ de = nom, numero = i, carre = i * i }) end
  q:put(nil)
end

local producteurs = {}
for i, nom in ipairs({ "A", "B" }) do
  local interp = interpreters.create()
  producteurs[i] = { interp = interp, thread = interp:call_in_thread(producteur, file, nom, 5) }
end

local fins, recus = 0, {}
while fins < #producteurs do
  local element = file:get{ timeout = 10 }
  if element == nil then
    fins = fins + 1
  else
    recus[#recus + 1] = element
    print(("reçu de %s : %d² = %d"):format(element.de, element.numero, element.carre))
  end
end
for _, p in ipairs(producteurs) do
  p.thread:join()
  p.interp:close()
end
print(("%d éléments reçus de %d interpréteurs"):format(#recus, #producteurs))
