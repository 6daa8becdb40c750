-- Cours « Tâches parallèles » (CC-IN2P3), Multi-threading : Syntaxe par l'exemple, plusieurs threads
--
-- Trois threads dorment un temps tiré au hasard ; le principal les attend.
-- Le cours tire random.randint(2, 8) secondes ; raccourci ici au quart
-- (0,5 à 2 s). Les threads finissent dans l'ordre de leur durée, pas de
-- leur création, et le tout dure autant que le plus long.
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
  local delay_s = math.random(2, 8) / 4     -- random.randint(2, 8) s dans le cours
  log("Sleeping %.2f s ...", delay_s)
  time.sleep(delay_s)
  log("Ending thread %s", threading.current_thread().name)
end

local function main()
  local my_basic_threads = {}
  for i = 1, 3 do
    local my_basic_thread = MyBasicThread()
    my_basic_thread.name = tostring(i)      -- setName(i)
    my_basic_threads[#my_basic_threads + 1] = my_basic_thread
  end
  for _, t in ipairs(my_basic_threads) do t:start() end
  log("Waiting for end of threads from '%s'", threading.current_thread().name)
  for _, t in ipairs(my_basic_threads) do t:join() end
  log("All running threads are over from '%s'", threading.current_thread().name)
end

main()
