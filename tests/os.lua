#!/usr/bin/env gilua
-- os.getpid, os.getppid, os.cpu_count (added to Lua's os).
local t = require "tap"
local threading = require "threading"

local function proc_stat(pid)
  local f = io.open("/proc/" .. pid .. "/stat", "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  -- pid (comm) state ppid ...: comm may hold spaces, so parse after the last ')'
  local after = s:match("%)%s+(.*)$")
  local state, ppid = after:match("^(%S+)%s+(%d+)")
  return tonumber(ppid)
end

local pid, ppid = os.getpid(), os.getppid()
t.is(math.type(pid), "integer", "getpid() is an integer")
t.is(math.type(ppid), "integer", "getppid() is an integer")
t.ok(io.open("/proc/" .. pid .. "/stat") ~= nil, "getpid() is a live process")
t.is(proc_stat("self"), ppid, "getppid() is the parent in /proc/self/stat")
do
  -- /proc/self is the calling process
  local f = io.open("/proc/self/stat", "r")
  local s = f and f:read("l")
  if f then f:close() end
  t.is(tonumber(s and s:match("^(%d+)")), pid, "getpid() is /proc/self's pid")
end

-- same values from another thread
do
  local tp, tpp
  local th = threading.Thread{ target = function() tp, tpp = os.getpid(), os.getppid() end }
  th:start(); th:join()
  t.is(tp, pid, "getpid() is the same in another thread")
  t.is(tpp, ppid, "getppid() is the same in another thread")
end

-- a child's parent is us (or the shell that os.execute ran for us)
do
  local r = t.run([[
    local f = io.open("/proc/" .. os.getppid() .. "/stat")
    local s = f:read("a"); f:close()
    local gp = s:match("%)%s+%S+%s+(%d+)")
    io.write(os.getpid(), " ", os.getppid(), " ", gp)
  ]])
  local cpid, cppid, cgp = r.stdout:match("^(%d+) (%d+) (%d+)$")
  t.ok(cpid and tonumber(cpid) ~= pid, "a child gilua has another pid (" .. r.stdout .. r.stderr .. ")")
  t.ok(tonumber(cppid) == pid or tonumber(cgp) == pid,
       "the child's getppid() leads back to us")
end

-- cpu_count
do
  local n = os.cpu_count()
  t.is(math.type(n), "integer", "cpu_count() is an integer")
  local p = io.popen("nproc --all 2>/dev/null || getconf _NPROCESSORS_ONLN")
  local expected = tonumber(p:read("l"))
  p:close()
  local online = io.popen("getconf _NPROCESSORS_ONLN")
  local on = tonumber(online:read("l"))
  online:close()
  t.ok(n == on or n == expected, "cpu_count() is the number of processors (" .. tostring(n) .. ")")
end

t.done_testing()
