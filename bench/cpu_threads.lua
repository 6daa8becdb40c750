-- bench/cpu_threads.lua: twin of cpu_threads.py.
--
-- Two calls of a CPU-bound function (the course's `count += i` loop), either
-- one after the other (argument "seq") or in two threads started together
-- (argument "threads"). Under a GIL the threads take about as long as the
-- sequence: they take turns, they do not run in parallel.
-- Prints time=<seconds> and check=<sum of the two results>.
local threading = require "threading"
local time = require "time"

local N = 10000000

local function compter(n, resultats, i)
  local count = 0
  for k = 0, n - 1 do
    count = count + k
  end
  resultats[i] = count
end

local mode = arg[1] or "threads"
local resultats = {}
local t0 = time.perf_counter()
if mode == "seq" then
  compter(N, resultats, 1)
  compter(N, resultats, 2)
elseif mode == "threads" then
  local threads = {}
  for i = 1, 2 do
    threads[i] = threading.Thread{target = compter, args = {N, resultats, i}}
  end
  for _, t in ipairs(threads) do t:start() end
  for _, t in ipairs(threads) do t:join() end
else
  error("mode must be seq or threads")
end
local dt = time.perf_counter() - t0
print(("time=%.6f"):format(dt))
print(("check=%d"):format(resultats[1] + resultats[2]))
