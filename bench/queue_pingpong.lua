-- bench/queue_pingpong.lua: twin of queue_pingpong.py.
--
-- 100,000 round trips between two threads through two Queues: the main
-- thread puts a number in `aller` and waits for it on `retour`, where an
-- echo thread puts it back. Every trip hands the GIL from one thread to
-- the other, so this measures the wake-up path of a blocked get.
-- Prints time=<seconds>.
local threading = require "threading"
local queue = require "queue"
local time = require "time"

local NB = 100000

local aller, retour = queue.Queue(), queue.Queue()
local echo = threading.Thread{target = function()
  while true do
    local x = aller:get()
    if x == nil then break end
    retour:put(x)
  end
end}
echo:start()

local t0 = time.perf_counter()
local somme = 0
for i = 1, NB do
  aller:put(i)
  somme = somme + retour:get()
end
local dt = time.perf_counter() - t0
aller:put(nil)
echo:join()
print(("time=%.6f"):format(dt))
print(("check=%d"):format(somme))
