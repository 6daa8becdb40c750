-- bench/mp_cpu.lua: twin of mp_cpu.py.
--
-- Two calls of a CPU-bound function (the course's `count += i` loop): one
-- after the other ("seq"), in two threads ("threads") or in two processes
-- ("processes"). Threads share one GIL and take turns; processes have one
-- each and run in parallel (about half the time on 2 cores).
-- Prints time=<seconds> and check=<sum of the two results>.
local threading = require "threading"
local multiprocessing = require "multiprocessing"
local time = require "time"

local N = 60000000

local function compter(n, resultats, i)
  local count = 0
  for k = 0, n - 1 do
    count = count + k
  end
  resultats[i] = count
end

local mode = arg[1] or "processes"
local resultats = {}
local t0 = time.perf_counter()
if mode == "seq" then
  compter(N, resultats, 1)
  compter(N, resultats, 2)
elseif mode == "threads" then
  local ts = {}
  for i = 1, 2 do ts[i] = threading.Thread{target = compter, args = {N, resultats, i}} end
  for _, t in ipairs(ts) do t:start() end
  for _, t in ipairs(ts) do t:join() end
elseif mode == "processes" then
  local shared = multiprocessing.Array("q", 2)
  local ps = {}
  for i = 1, 2 do
    ps[i] = multiprocessing.Process{target = function()
      local r = {}
      compter(N, r, 1)
      shared[i] = r[1]
    end}
  end
  for _, p in ipairs(ps) do p:start() end
  for _, p in ipairs(ps) do p:join() end
  resultats = {shared[1], shared[2]}
else
  error("mode must be seq, threads or processes")
end
print(("time=%.6f"):format(time.perf_counter() - t0))
print(("check=%d"):format(resultats[1] + resultats[2]))
