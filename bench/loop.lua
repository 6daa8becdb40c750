-- bench/loop.lua: a single-thread interpreter loop, run unchanged by gilua
-- and by stock lua5.4, to show what the GIL costs code that never starts a
-- thread (the goal: nothing, since drop requests arrive by hook, not by a
-- per-instruction check).
--
-- Timed with os.clock() (process CPU time), the only sub-second clock that
-- stock Lua has; with one thread running, CPU time is the elapsed time.
-- Prints time=<seconds> and check=<value> (the same in both interpreters).

local function fib(n)
  if n < 2 then return n end
  return fib(n - 1) + fib(n - 2)
end

local t0 = os.clock()

-- 1. arithmetic in a numeric for loop
local s = 0
for i = 1, 20000000 do
  s = s + i % 7
end

-- 2. function calls and returns
local f = fib(27)

-- 3. tables: fill, walk, field access
local t = {}
for i = 1, 2000000 do t[i] = i * 2 end
local acc = 0
for _, v in ipairs(t) do acc = acc + v end
local p = { x = 0, y = 0 }
for i = 1, 3000000 do p.x = p.x + 1; p.y = p.y + p.x end

-- 4. strings: concatenation in a buffer, and a while loop
local parts = {}
local i = 0
while i < 200000 do
  i = i + 1
  parts[#parts + 1] = tostring(i)
end
local str = table.concat(parts, ",")

local dt = os.clock() - t0
print(("time=%.6f"):format(dt))
print(("check=%d"):format((s + f + acc + p.y + #str) % 1000000007))
