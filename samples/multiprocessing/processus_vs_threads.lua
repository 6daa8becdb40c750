-- The course's lesson in one table: the same CPU-bound work done
-- sequentially, in 2 threads (no faster: one GIL) and in 2 processes
-- (about 2x faster on 2 cores: one GIL each).
--
--     gilua samples/multiprocessing/processus_vs_threads.lua [N]
local multiprocessing = require "multiprocessing"
local threading = require "threading"
local time = require "time"

local N = tonumber(arg and arg[1]) or 40000000

local function travail()
  local s = 0
  for i = 1, N do s = s + i % 7 end
  return s
end

local function chrono(f)
  local t0 = time.monotonic()
  f()
  return time.monotonic() - t0
end

if __name__ == "__main__" then
  local seq = chrono(function() travail(); travail() end)
  local thr = chrono(function()
    local ts = {threading.Thread{target = travail}, threading.Thread{target = travail}}
    for _, t in ipairs(ts) do t:start() end
    for _, t in ipairs(ts) do t:join() end
  end)
  local proc = chrono(function()
    local ps = {multiprocessing.Process{target = travail}, multiprocessing.Process{target = travail}}
    for _, p in ipairs(ps) do p:start() end
    for _, p in ipairs(ps) do p:join() end
  end)
  print(("%-14s %8s %8s"):format("2 x travail()", "temps", "vs séq."))
  print(("%-14s %7.2fs %7.2fx"):format("séquentiel", seq, 1))
  print(("%-14s %7.2fs %7.2fx"):format("2 threads", thr, seq / thr))
  print(("%-14s %7.2fs %7.2fx"):format("2 processus", proc, seq / proc))
  print(("(%d cœurs)"):format(multiprocessing.cpu_count()))
end
