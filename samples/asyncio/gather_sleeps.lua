--[[
« Concurrence avancée » 20.1, the asyncio row (I/O concurrency on one
thread): 10,000 coroutines each wait 1 s, gathered; it takes about 1 s,
not 10,000 s, on one thread and without a thread per wait. The waits are
timers in the event loop's heap, not sleeping threads.

    gilua samples/asyncio/gather_sleeps.lua [count] [seconds]
]]
local asyncio = require "asyncio"
local time = require "time"

local N = tonumber(arg and arg[1]) or 10000
local DELAY = tonumber(arg and arg[2]) or 1

local attendre = asyncio.async(function(i)
  asyncio.sleep(DELAY):await()
  return i
end, "attendre")

local main = asyncio.async(function()
  local t0 = time.perf_counter()
  local coros = {}
  for i = 1, N do coros[i] = attendre(i) end
  local res = asyncio.gather(table.unpack(coros)):await()
  local dt = time.perf_counter() - t0
  local sum = 0
  for i = 1, N do sum = sum + res[i] end
  print(("%d attentes de %g s en %.2f s (somme des résultats %d)"):format(N, DELAY, dt, sum))
end, "main")

asyncio.run(main())
