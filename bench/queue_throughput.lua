-- bench/queue_throughput.lua: twin of queue_throughput.py.
--
-- One producer thread puts 200,000 numbers then nil (the end signal) in an
-- unbounded Queue; the main thread gets them all. Measures put/get
-- themselves more than the hand-overs (the producer runs ahead, and the
-- GIL changes hands every switch interval or when the consumer waits).
-- Prints time=<seconds>.
local threading = require "threading"
local queue = require "queue"
local time = require "time"

local NB = 200000

local q = queue.Queue()
local t0 = time.perf_counter()
local producteur = threading.Thread{target = function()
  for i = 1, NB do q:put(i) end
  q:put(nil)
end}
producteur:start()
local n, somme = 0, 0
while true do
  local x = q:get()
  if x == nil then break end
  n = n + 1
  somme = somme + x
end
producteur:join()
print(("time=%.6f"):format(time.perf_counter() - t0))
print(("check=%d:%d"):format(n, somme))
