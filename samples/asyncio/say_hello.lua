--[[
The course's first asyncio example: two tasks that each print "Hello",
sleep one second without blocking the thread, then print "World".
Prints Hello, Hello, World, World in about 1 s (not 2: the two sleeps
overlap on the one thread that runs the event loop).
]]
local asyncio = require "asyncio"
local time = require "time"

local say_hello = asyncio.async(function()
  print("Hello")
  asyncio.sleep(1):await()
  print("World")
end, "say_hello")

local main = asyncio.async(function()
  local t1 = asyncio.create_task(say_hello())
  local t2 = asyncio.create_task(say_hello())
  t1:await()
  t2:await()
end, "main")

local t0 = time.perf_counter()
asyncio.run(main())
print(("elapsed %.2f s"):format(time.perf_counter() - t0))
