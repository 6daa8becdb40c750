-- bench/thread_start.lua: twin of thread_start.py.
--
-- 2,000 times: make a Thread running an empty function, start it, join it.
-- Measures the cost of a thread's whole life (OS thread, interpreter thread
-- state, start handshake, join). Prints time=<seconds>.
local threading = require "threading"
local time = require "time"

local NB = 2000

local function rien() end

local t0 = time.perf_counter()
for _ = 1, NB do
  local t = threading.Thread{target = rien}
  t:start()
  t:join()
end
print(("time=%.6f"):format(time.perf_counter() - t0))
print(("check=%d"):format(NB))
