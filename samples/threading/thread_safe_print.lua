-- Cours « La programmation concurrente avec Python », Multiprocessing et verrou : thread_safe_print
--
-- `with lock:` devient `local _ <close> = lock:acquire()` : le verrou est
-- acquis avant le bloc et libéré automatiquement à la fin de la portée.
local threading = require "threading"
local lock = threading.Lock()

local function thread_safe_print()
  local _ <close> = lock:acquire()
  print("This is thread-safe")
end

local thread = threading.Thread{target = thread_safe_print}
thread:start()
thread:join()
