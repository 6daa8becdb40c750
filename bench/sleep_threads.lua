-- bench/sleep_threads.lua: twin of sleep_threads.py.
--
-- 10 threads each sleep 0.2 s; a sleeping thread releases the GIL, so they
-- overlap and the whole takes about 0.2 s, not 2 s.
-- Prints time=<seconds>.
local threading = require "threading"
local time = require "time"

local NB, DUREE = 10, 0.2

local t0 = time.perf_counter()
local threads = {}
for i = 1, NB do
  threads[i] = threading.Thread{target = time.sleep, args = {DUREE}}
end
for _, t in ipairs(threads) do t:start() end
for _, t in ipairs(threads) do t:join() end
print(("time=%.6f"):format(time.perf_counter() - t0))
print(("check=%d"):format(NB))
