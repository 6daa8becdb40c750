#!/usr/bin/env gilua
-- What a program forgets to close is ended all the same: a Pool that is
-- collected ends its workers and threads (Python's finalizer); a shared
-- memory block nobody unlinked is removed once its processes are gone,
-- with a warning (Python's resource tracker); a block whose mapping failed
-- is not left behind.
require("support.util").tsan_allow_fork()

local t = require "tap"
local mp = require "multiprocessing"
local shared_memory = require "multiprocessing.shared_memory"
local time = require "time"

local pid = os.getpid()
-- ThreadSanitizer starts a thread of its own at some point of the run
local tsan_thread = (os.getenv("GILUA_BUILD") or ""):match("tsan") and 1 or 0
local function count(cmd)
  local n = 0
  local p = io.popen(cmd)
  for _ in p:lines() do n = n + 1 end
  p:close()
  return n
end
local function threads() return count("ls /proc/" .. pid .. "/task") end
local function fds() return count("ls /proc/" .. pid .. "/fd") end
local function workers() return count("ps -o pid= --ppid " .. pid .. " | grep -v \"^ *$$\"") end
local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

-- 20 pools dropped without close
do
  collectgarbage(); collectgarbage()
  local t0, f0, w0 = threads(), fds(), workers()
  local pools = {}
  for i = 1, 20 do pools[i] = mp.Pool(2); pools[i]:map(math.abs, { -1, -2 }) end
  t.ok(threads() >= t0 + 40 and workers() >= w0 + 40,
       ("20 pools run 40 threads and 40 workers (%d and %d more)"):format(threads() - t0, workers() - w0))
  pools = nil        -- dropped without close
  local th, fd, wk
  for _ = 1, 50 do           -- collected, then their threads notice within 0.5 s
    collectgarbage(); collectgarbage()
    th, fd, wk = threads(), fds(), workers()
    if th <= t0 + tsan_thread and fd <= f0 and wk <= w0 then break end
    time.sleep(0.1)
  end
  t.ok(th <= t0 + tsan_thread, ("collected pools leave no thread behind (%d, %d before)"):format(th, t0))
  t.ok(wk <= w0, ("... no worker process (%d, %d before)"):format(wk, w0))
  t.ok(fd <= f0, ("... no descriptor (%d, %d before)"):format(fd, f0))
end

-- a forked child that collects its copy of a pool leaves the parent's alone
do
  local keep = { mp.Pool(1) }
  local p = mp.Process{ target = function()
    keep[1] = nil
    collectgarbage(); collectgarbage()
  end }
  p:start()
  p:join(10)
  t.is(p.exitcode, 0, "the child collected its copy of the pool and ended")
  if p.exitcode == nil then p:kill(); p:join() end
  t.is(keep[1]:apply(math.abs, { -3 }), 3, "the parent's pool still works")
  keep[1]:terminate()
end

-- a block whose mapping fails is not left in /dev/shm
do
  local name = "gilua_test_" .. pid
  local ok, err = pcall(shared_memory.SharedMemory, { name = name, create = true, size = 1 << 50 })
  t.ok(not ok, "a 1 PiB block cannot be mapped (" .. tostring(err) .. ")")
  t.ok(not exists("/dev/shm/" .. name), "... and its file is not left in /dev/shm")
  if exists("/dev/shm/" .. name) then os.remove("/dev/shm/" .. name) end
end

-- blocks never unlinked are removed after exit, with a warning
do
  local gilua = os.getenv("GILUA") or "gilua"
  local log = os.tmpname()
  local script = [[
    local mp = require "multiprocessing"
    local sm = require "multiprocessing.shared_memory"
    local kept = sm.SharedMemory{ create = true, size = 8 }
    local gone = sm.SharedMemory{ create = true, size = 8 }
    gone:close(); gone:unlink()
    local p = mp.Process{ target = function()       -- a forked child's block too
      local c = sm.SharedMemory{ create = true, size = 8 }
      print(c.name)
    end }
    p:start(); p:join()
    print(kept.name)
    print(gone.name)
  ]]
  local p = io.popen(gilua .. " -e '" .. script:gsub("'", "'\\''") .. "' 2>" .. log)
  local child_name, kept_name, gone_name = p:read("l"), p:read("l"), p:read("l")
  p:close()
  local cleared = false
  for _ = 1, 100 do
    if not exists("/dev/shm/" .. kept_name) and not exists("/dev/shm/" .. child_name) then
      cleared = true
      break
    end
    time.sleep(0.05)
  end
  local errtext = io.open(log):read("a")
  os.remove(log)
  t.ok(cleared, "blocks never unlinked (" .. tostring(kept_name) .. ", " .. tostring(child_name) ..
                ") are removed after the program ends")
  t.like(errtext, "There appear to be 2 leaked shared_memory objects", "with a warning, as Python's")
  t.ok(errtext:find(kept_name, 1, true) and errtext:find(child_name, 1, true),
       "the warning names them")
  t.ok(not errtext:find(gone_name, 1, true), "a block that was unlinked is not named")
  for _, n in ipairs({ kept_name, child_name }) do
    if exists("/dev/shm/" .. n) then os.remove("/dev/shm/" .. n) end
  end
end

t.done_testing()
