-- Interblocage (deadlock) : deux verrous pris dans l'ordre inverse
--
-- Thread-A prend lock_a puis lock_b ; Thread-B prend lock_b puis lock_a.
-- Si le GIL change de main entre les deux acquisitions de l'un, chacun
-- tient le verrou que l'autre attend, et aucun ne finira jamais.
--
-- Lancé simplement, le programme se termine presque toujours : les
-- threads sont si courts que le GIL ne change presque jamais de main au
-- mauvais moment (et s'il le fait, le programme reste bloqué : Ctrl-C).
-- Sous l'ordonnanceur déterministe, le GIL peut passer entre deux
-- instructions quelconques :
--
--     gilua --explore=100 samples/sched/deadlock.lua
--         trouve les graines qui mènent à l'interblocage (issue « deadlock »)
--     gilua --sched=random --seed=S samples/sched/deadlock.lua
--         rejoue l'une d'elles : gilua s'arrête, dit quel thread attend
--         quel verrou et où, et sort avec le statut 3
--
-- Le remède : prendre les verrous toujours dans le même ordre.
local threading = require "threading"

local NB_TOURS = 5

local lock_a = threading.Lock()
local lock_b = threading.Lock()
local transferts = 0

local function transfert_ab()
  for _ = 1, NB_TOURS do
    local _a <close> = lock_a:acquire()
    local _b <close> = lock_b:acquire()
    transferts = transferts + 1
  end
end

local function transfert_ba()
  for _ = 1, NB_TOURS do
    local _b <close> = lock_b:acquire()   -- l'ordre inverse : le danger
    local _a <close> = lock_a:acquire()
    transferts = transferts + 1
  end
end

local a = threading.Thread{name = "Thread-A", target = transfert_ab}
local b = threading.Thread{name = "Thread-B", target = transfert_ba}
a:start(); b:start()
a:join(); b:join()

print(("transferts = %d"):format(transferts))  -- 10, sans interblocage
