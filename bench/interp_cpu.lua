-- bench/interp_cpu.lua (gilua only: CPython's twin needs 3.14's
-- concurrent.interpreters).
--
-- Two calls of a CPU-bound function (the course's `count += i` loop): one
-- after the other ("seq"), in two threads of one interpreter ("threads":
-- one GIL, they take turns) or in two interpreters, each called from a
-- thread of its own ("interpreters": a GIL each, in parallel, about half
-- the time on 2 cores).
-- Prints time=<seconds> and check=<sum of the two results>.
local interpreters = require "concurrent.interpreters"
local threading = require "threading"
local time = require "time"

local N = 60000000

local function compter(n)
  local count = 0
  for k = 0, n - 1 do
    count = count + k
  end
  return count
end

local mode = arg[1] or "interpreters"
local its = { interpreters.create(), interpreters.create() }
local resultats = {}
local t0 = time.perf_counter()
if mode == "seq" then
  resultats[1], resultats[2] = compter(N), compter(N)
else
  local ts = {}
  for i = 1, 2 do
    local target = function() resultats[i] = compter(N) end
    if mode == "interpreters" then
      target = function() resultats[i] = its[i]:call(compter, N) end
    elseif mode ~= "threads" then
      error("mode must be seq, threads or interpreters")
    end
    ts[i] = threading.Thread{ target = target }
  end
  for _, t in ipairs(ts) do t:start() end
  for _, t in ipairs(ts) do t:join() end
end
print(("time=%.6f"):format(time.perf_counter() - t0))
print(("check=%d"):format(resultats[1] + resultats[2]))
