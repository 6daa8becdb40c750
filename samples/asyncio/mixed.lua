--[[
« Concurrence avancée » 20.6: "Mixte → ProcessPoolExecutor pour le CPU +
asyncio/threading pour l'I/O". The event loop keeps serving I/O (here a
ticker task standing for requests) while CPU-bound work runs elsewhere
through loop:run_in_executor:

  1. in the loop itself: the ticker stops for the whole computation;
  2. in a thread pool (the default executor): the ticker goes on, but the
     computations do not overlap (the GIL);
  3. in a ProcessPoolExecutor: the ticker goes on and the computations
     run in parallel on the cores.

    gilua samples/asyncio/mixed.lua [iterations]
]]
local asyncio = require "asyncio"
local futures = require "concurrent.futures"
local time = require "time"

-- CPU-bound: a plain Lua loop (must be a global function for the pool's
-- worker processes, which load this script as __mp_main__).
function calcul(n)
  local s = 0
  for i = 1, n do s = s + i % 7 end
  return s
end

local N = tonumber(arg and arg[1]) or 20000000

local ticker = asyncio.async(function(state)
  while true do
    state.ticks = state.ticks + 1
    asyncio.sleep(0.01):await()
  end
end, "ticker")

local function measure(label, run_two)
  local state = { ticks = 0 }
  local tk = asyncio.create_task(ticker(state))
  asyncio.sleep(0.02):await()
  local t0 = time.perf_counter()
  state.ticks = 0
  run_two()
  local dt = time.perf_counter() - t0
  tk:cancel()
  print(("%-28s %.2f s, the loop ticked %3d times (%.0f/s)"):format(
    label, dt, state.ticks, state.ticks / dt))
end

local main = asyncio.async(function()
  local loop = asyncio.get_running_loop()
  measure("in the loop:", function()
    calcul(N); calcul(N)
  end)
  measure("thread pool (default):", function()
    asyncio.gather(loop:run_in_executor(nil, calcul, N),
                   loop:run_in_executor(nil, calcul, N)):await()
  end)
  local pool <close> = futures.ProcessPoolExecutor{max_workers = 2}
  pool:submit(calcul, 1):result()          -- start the workers first
  measure("ProcessPoolExecutor(2):", function()
    asyncio.gather(loop:run_in_executor(pool, calcul, N),
                   loop:run_in_executor(pool, calcul, N)):await()
  end)
end, "main")

if __name__ == "__main__" then
  asyncio.run(main())
end
