-- bench/manager_dict.lua: twin of manager_dict.py.
--
-- A SyncManager serving over TCP on loopback (its server a process of its
-- own, started before the clock); the client does 10,000 x (d[k] = i, then
-- d[k]), each a request and a reply over the socket. Prints time=<seconds>
-- for the 20,000 operations, ops_per_s and check.
local managers = require "multiprocessing.managers"
local time = require "time"

local NB = 10000

local m <close> = managers.SyncManager{address = {"127.0.0.1", 0}, authkey = "bench"}
m:start()
local d = m:dict()
local t0 = time.perf_counter()
local somme = 0
for i = 1, NB do
  local k = "k" .. (i % 100)
  d[k] = i
  somme = somme + d[k]
end
local dt = time.perf_counter() - t0
print(("time=%.6f"):format(dt))
print(("ops_per_s=%.0f"):format(2 * NB / dt))
print(("check=%d:%d"):format(#d, somme))
