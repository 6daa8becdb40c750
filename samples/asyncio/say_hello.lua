--[[
« La programmation concurrente avec Python », « Bibliothèque asyncio : les
coroutines »: say_hello. Two tasks each print "Hello", sleep one second
without blocking the thread, then print "World": Hello, Hello, World,
World in about 1 s (not 2: the two sleeps overlap on the one thread that
runs the event loop).

In Lua: `async def f()` is `local f = asyncio.async(function() ... end)`,
`await x` is `x:await()`; the rest reads as in Python. The elapsed time
is printed at the end to show the overlap.
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
