-- bench/lock_uncontended.lua: twin of lock_uncontended.py.
--
-- 1,000,000 acquire/release pairs on a threading.Lock that no other thread
-- wants: the cost of the lock's fast path plus two method calls.
-- Prints time=<seconds>.
local threading = require "threading"
local time = require "time"

local NB = 1000000

local verrou = threading.Lock()
local t0 = time.perf_counter()
for _ = 1, NB do
  verrou:acquire()
  verrou:release()
end
print(("time=%.6f"):format(time.perf_counter() - t0))
print(("check=%d"):format(verrou:locked() and 1 or 0))
