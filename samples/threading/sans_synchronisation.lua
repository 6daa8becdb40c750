-- Cours « Tâches parallèles » (CC-IN2P3), Multi-threading : Syntaxe par l'exemple, Code SANS synchronisation
--
-- Cinq threads écrivent "PYTHON" lettre à lettre en dormant 1 à 250 ms
-- entre deux lettres : sans verrou, les lettres s'entremêlent, par exemple
-- <PPPPPYYTYYHYTTTOHTNOHHOHN ONONN >
-- Comparer avec avec_synchronisation.lua.
local threading = require "threading"
local time = require "time"

local MyThread = threading.Thread:extend()

function MyThread:init()
  threading.Thread.init(self)
end

function MyThread:run()
  for c in ("PYTHON"):gmatch(".") do
    io.write(c); io.stdout:flush()
    local delay_s = math.random(1, 250)
    time.sleep(delay_s / 1000)
  end
  io.write(" "); io.stdout:flush()
end

local function main()
  local my_threads = {}
  for _ = 1, 5 do my_threads[#my_threads + 1] = MyThread() end
  -- start threads then wait
  io.write("<"); io.stdout:flush()
  for _, t in ipairs(my_threads) do t:start() end
  for _, t in ipairs(my_threads) do t:join() end
  io.write(">\n"); io.stdout:flush()
end

main()
