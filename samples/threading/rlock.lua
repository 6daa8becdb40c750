-- Cours « Concurrence avancée » 20.2, threading : RLock — verrou réentrant
--
-- f() prend le verrou puis appelle g() qui le reprend : permis avec un
-- RLock (le même thread peut l'acquérir plusieurs fois), bloquant avec un
-- Lock. Le cours ne fait que définir f et g ; on les appelle ici depuis
-- trois threads, puis on montre qu'un Lock ordinaire bloquerait (avec un
-- délai d'attente de 0,5 s pour ne pas rester bloqué pour de bon).
local threading = require "threading"
local RLock = threading.RLock

local verrou = RLock()  -- même thread peut acquérir plusieurs fois

local function g()
  local _ <close> = verrou:acquire()    -- OK avec RLock, bloquerait avec Lock
  print(("  g() dans %s : verrou repris"):format(threading.current_thread().name))
end

local function f()
  local _ <close> = verrou:acquire()
  g()
end

local threads = {}
for i = 1, 3 do
  threads[i] = threading.Thread{target = f, name = "T" .. i}
  threads[i]:start()
end
for _, t in ipairs(threads) do t:join() end

-- La même chose avec un Lock : la seconde acquisition par le même thread
-- attendrait indéfiniment ; avec un timeout, acquire renvoie false.
local simple = threading.Lock()
simple:acquire()
local ok = simple:acquire(true, 0.5)
print(("Avec un Lock, seconde acquisition par le même thread : %s (bloquerait)")
      :format(ok and "réussie" or "échec après 0,5 s"))
simple:release()
