-- Cours « Tâches parallèles » (CC-IN2P3), Multi-threading : Syntaxe par l'exemple, Code AVEC synchronisation
--
-- Le même programme que sans_synchronisation.lua, mais l'écriture du mot
-- est une section critique protégée par un RLock (acquire/release
-- explicites, comme dans le cours) : <PYTHON PYTHON PYTHON PYTHON PYTHON >
local threading = require "threading"
local time = require "time"

local lock = threading.RLock()

local MyThread = threading.Thread:extend()

function MyThread:init()
  threading.Thread.init(self)
end

function MyThread:run()
  -- processing data

  -- Entering in critical section ...
  lock:acquire()            -- lock usage
  for c in ("PYTHON"):gmatch(".") do
    io.write(c); io.stdout:flush()
    local delay_s = math.random(1, 250)
    time.sleep(delay_s / 1000)
  end
  io.write(" "); io.stdout:flush()
  lock:release()            -- lock usage
  -- Leaving critical section ...

  -- processing data
end

local function main()
  -- using the class in the same way as previously
  local my_threads = {}
  for _ = 1, 5 do my_threads[#my_threads + 1] = MyThread() end
  io.write("<"); io.stdout:flush()
  for _, t in ipairs(my_threads) do t:start() end
  for _, t in ipairs(my_threads) do t:join() end
  io.write(">\n"); io.stdout:flush()
end

main()
