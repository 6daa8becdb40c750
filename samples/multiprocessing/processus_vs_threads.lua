-- The course's lesson in one table: the same CPU-bound work done
-- sequentially, in 2 threads (no faster: one GIL) and in 2 processes
-- (about 2x faster on 2 cores: one GIL each).
--
-- The "cœurs" column is the CPU time used (by this process, its threads
-- and its finished children) divided by the elapsed time: how many cores
-- computed at once, on average. Threads stay at 1 or below (the GIL lets
-- one compute at a time), processes reach 2 on two free cores. On a
-- machine busy with other programs it is below those: what was left.
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

-- CPU seconds used by this process (all its threads) and by its children
-- once joined: time.process_time() plus cutime and cstime from
-- /proc/self/stat (Linux; in clock ticks, 100 a second).
local function temps_cpu()
  local f = io.open("/proc/self/stat")
  local champs = {}
  if f then
    for v in f:read("a"):match("%) (.*)$"):gmatch("%S+") do champs[#champs + 1] = v end
    f:close()
  end
  local ticks = (tonumber(champs[14]) or 0) + (tonumber(champs[15]) or 0)
  return time.process_time() + ticks / 100
end

-- Elapsed time of f() and the cores it kept busy on average.
local function chrono(f)
  local t0, c0 = time.monotonic(), temps_cpu()
  f()
  local dt = time.monotonic() - t0
  return dt, (temps_cpu() - c0) / dt
end

if __name__ == "__main__" then
  local seq, seq_c = chrono(function() travail(); travail() end)
  local thr, thr_c = chrono(function()
    local ts = {threading.Thread{target = travail}, threading.Thread{target = travail}}
    for _, t in ipairs(ts) do t:start() end
    for _, t in ipairs(ts) do t:join() end
  end)
  local proc, proc_c = chrono(function()
    local ps = {multiprocessing.Process{target = travail}, multiprocessing.Process{target = travail}}
    for _, p in ipairs(ps) do p:start() end
    for _, p in ipairs(ps) do p:join() end
  end)
  print(("%-14s %8s %8s %7s"):format("2 x travail()", "temps", "vs séq.", "cœurs"))
  print(("%-14s %7.2fs %7.2fx %7.2f"):format("séquentiel", seq, 1, seq_c))
  print(("%-14s %7.2fs %7.2fx %7.2f"):format("2 threads", thr, seq / thr, thr_c))
  print(("%-14s %7.2fs %7.2fx %7.2f"):format("2 processus", proc, seq / proc, proc_c))
  print(("(%d cœurs)"):format(multiprocessing.cpu_count()))
end
