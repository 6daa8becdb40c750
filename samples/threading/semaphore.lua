-- Cours « Concurrence avancée » 20.2, threading : Semaphore — nombre limité d'accès
--
-- Semaphore(3) : au plus trois threads à la fois dans la section protégée.
-- Le cours laisse le corps vide (`...`) ; ici dix threads y passent 0,2 s
-- chacun et l'on compte combien s'y trouvent en même temps.
local threading = require "threading"
local time = require "time"
local Semaphore = threading.Semaphore

local semaphore = Semaphore(3)  -- max 3 threads simultanés
local compte = threading.Lock()
local dedans, maximum = 0, 0

local function acces_ressource_limitee(i)
  local _ <close> = semaphore:acquire()
  compte:with(function()
    dedans = dedans + 1
    if dedans > maximum then maximum = dedans end
    print(("thread %d entre (%d dans la ressource)"):format(i, dedans))
  end)
  time.sleep(0.2)                       -- utiliser la ressource
  compte:with(function() dedans = dedans - 1 end)
end

local t0 = time.perf_counter()
local threads = {}
for i = 1, 10 do
  threads[i] = threading.Thread{target = acces_ressource_limitee, args = {i}}
  threads[i]:start()
end
for _, t in ipairs(threads) do t:join() end
print(("Au plus %d threads à la fois ; 10 accès de 0,2 s en %.1f s (4 vagues)")
      :format(maximum, time.perf_counter() - t0))
