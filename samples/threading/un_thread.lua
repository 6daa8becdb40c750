-- Cours « Tâches parallèles » (CC-IN2P3), Multi-threading : Syntaxe par l'exemple, un seul thread
--
-- MyBasicThread dérive de Thread et redéfinit run(). Le logging Python
-- (format "%(asctime)s.%(msecs)03d %(message)s", datefmt '%H:%M:%S') est
-- rendu par log() : os.date("%H:%M:%S") plus les millisecondes de time.time().
-- Le cours dort 10 s ; raccourci ici à 2 s.
local threading = require "threading"
local time = require "time"

local function log(fmt, ...)
  local t = time.time()
  print(("%s.%03d %s"):format(os.date("%H:%M:%S", math.floor(t)),
                              math.floor(t % 1 * 1000), fmt:format(...)))
end

local MyBasicThread = threading.Thread:extend()

function MyBasicThread:init()
  threading.Thread.init(self)
end

function MyBasicThread:run()
  log("Starting thread %s", threading.current_thread().name)
  local delay_s = 2                     -- 10 s dans le cours
  log("Sleeping %d s ...", delay_s)
  time.sleep(delay_s)
  log("Ending thread %s", threading.current_thread().name)
end

local function main()
  local my_basic_thread = MyBasicThread()
  my_basic_thread.name = "#1"           -- setName("#1")
  my_basic_thread:start()
  log("Waiting for end of threads from '%s'", threading.current_thread().name)
  my_basic_thread:join()
  log("All running threads are over from '%s'", threading.current_thread().name)
end

main()
