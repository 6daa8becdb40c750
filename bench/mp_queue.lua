-- bench/mp_queue.lua: twin of mp_queue.py.
--
-- A child process puts 100,000 numbers then nil in a multiprocessing.Queue;
-- the parent gets them all. Prints time=<seconds>, items_per_s and check.
local multiprocessing = require "multiprocessing"
local time = require "time"

local NB = 100000

local q = multiprocessing.Queue()
local t0 = time.perf_counter()
local p = multiprocessing.Process{target = function()
  for i = 1, NB do q:put(i) end
  q:put(nil)
end}
p:start()
local n, somme = 0, 0
while true do
  local x = q:get()
  if x == nil then break end
  n, somme = n + 1, somme + x
end
p:join()
local dt = time.perf_counter() - t0
print(("time=%.6f"):format(dt))
print(("items_per_s=%.0f"):format(NB / dt))
print(("check=%d:%d"):format(n, somme))
