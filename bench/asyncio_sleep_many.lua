-- 10,000 tasks, all sleeping 0.1 s at once.
local asyncio = require "asyncio"
local time = require "time"
local N = 10000

local work = asyncio.async(function()
  asyncio.sleep(0.1):await()
  return 1
end)

local main = asyncio.async(function()
  local t0 = time.perf_counter()
  local tasks = {}
  for i = 1, N do tasks[i] = asyncio.create_task(work()) end
  local res = asyncio.gather(table.unpack(tasks, 1, N)):await()
  local dt = time.perf_counter() - t0
  local s = 0
  for i = 1, N do s = s + res[i] end
  print(("time=%.6f"):format(dt))
  print("check=" .. s)
end)

asyncio.run(main())
