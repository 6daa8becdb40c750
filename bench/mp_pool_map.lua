-- bench/mp_pool_map.lua: twin of mp_pool_map.py.
--
-- Pool(2):map of a CPU-bound function over 8 numbers in 8 chunks
-- (chunksize 1): each call sums 0 .. 2,000,000 + x. The pool is started
-- inside the timing. Prints time=<seconds> and check=<sum of results>.
local multiprocessing = require "multiprocessing"
local time = require "time"

local function somme(x)
  local s = 0
  for k = 0, 2000000 + x - 1 do s = s + k end
  return s
end

local t0 = time.perf_counter()
local total = 0
do
  local pool <close> = multiprocessing.Pool(2)
  local r = pool:map(somme, {1, 2, 3, 4, 5, 6, 7, 8}, 1)
  for _, v in ipairs(r) do total = total + v end
end
print(("time=%.6f"):format(time.perf_counter() - t0))
print(("check=%d"):format(total))
