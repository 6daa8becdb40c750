#!/usr/bin/env gilua
-- Program exit: waits for non-daemon threads (Python's rule); daemon threads
-- are stopped. Each case runs in a child gilua.
local t = require "tap"

-- A non-daemon thread that sleeps 0.3 s then prints: its output comes
-- before exit. A daemon thread that would print after main ends: never.
do
  local r = t.run([[
local threading = require "threading"
local time = require "time"
local nd = threading.Thread{ target = function()
  time.sleep(0.3)
  io.write("non-daemon done\n"); io.stdout:flush()
end }
local d = threading.Thread{ daemon = true, target = function()
  time.sleep(2)
  io.write("from the daemon\n"); io.stdout:flush()
end }
nd:start(); d:start()
io.write("main end\n"); io.stdout:flush()
]])
  t.is(r.status, 0, "exit status 0")
  local main_at = r.stdout:find("main end", 1, true)
  local nd_at = r.stdout:find("non-daemon done", 1, true)
  t.ok(main_at ~= nil, "main printed")
  t.ok(nd_at ~= nil, "the non-daemon thread's output appeared: exit waited for it")
  t.ok(main_at and nd_at and main_at < nd_at, "... after main's last line")
  t.unlike(r.stdout, "from the daemon", "the daemon thread's output after main ended did not appear")
  t.ok(r.elapsed >= 0.28, "the program lasted at least the non-daemon thread's 0.3 s (" ..
       string.format("%.2f", r.elapsed) .. ")")
  t.ok(r.elapsed < 1.9, "... but did not wait for the daemon thread's 2 s")
  t.is(r.stderr, "", "nothing on stderr")
end

-- Several non-daemon threads, started by other threads, all finish
do
  local r = t.run([[
local threading = require "threading"
local time = require "time"
for i = 1, 3 do
  threading.Thread{ target = function()
    threading.Thread{ target = function()
      time.sleep(0.1 * i)
      io.write("grandchild ", i, "\n"); io.stdout:flush()
    end }:start()
  end }:start()
end
]])
  local n = 0
  for _ in r.stdout:gmatch("grandchild %d") do n = n + 1 end
  t.is(n, 3, "non-daemon threads started by threads are waited for too")
  t.is(r.status, 0, "exit status 0")
end

-- A daemon thread busy in a CPU loop does not keep the program alive
do
  local r = t.run([[
local threading = require "threading"
threading.Thread{ daemon = true, target = function()
  local x = 0
  while true do x = x + 1 end
end }:start()
local time = require "time"
time.sleep(0.05)
print("bye")
]])
  t.is(r.status, 0, "a spinning daemon thread: exit status 0")
  t.like(r.stdout, "bye", "main finished")
  t.ok(r.elapsed < 5, "and the program ended (" .. string.format("%.2f", r.elapsed) .. " s)")
end

-- An error in the main script: non-zero status, but non-daemon threads still finish
do
  local r = t.run([[
local threading = require "threading"
local time = require "time"
threading.Thread{ target = function()
  time.sleep(0.2)
  io.write("worker finished\n"); io.stdout:flush()
end }:start()
error("main failed")
]])
  t.isnt(r.status, 0, "an error in the main script: non-zero exit status")
  t.like(r.stderr, "main failed", "the error is on stderr")
  t.like(r.stdout, "worker finished", "the non-daemon thread still ran to its end (Python's rule)")
end

-- __name__ is "__main__" in the main script
do
  local r = t.run([[io.write(tostring(__name__))]])
  t.is(r.stdout, "__main__", "__name__ is '__main__' in the main script")
end

-- Daemon threads asleep in a Lock, a Condition and a Queue at exit: the
-- interpreter closes (it used to hang, destroying a condition variable
-- that a thread slept on).
do
  local script = t.tmpname(".lua")
  local f = assert(io.open(script, "w"))
  f:write([[
local threading = require "threading"
local queue = require "queue"
local time = require "time"
local lock = threading.Lock()
lock:acquire()
local cond = threading.Condition()
local q = queue.Queue()
threading.Thread{ daemon = true, target = function() lock:acquire() end }:start()
threading.Thread{ daemon = true, target = function() cond:acquire(); cond:wait() end }:start()
threading.Thread{ daemon = true, target = function() q:get() end }:start()
time.sleep(0.2)
io.write("main end\n")
]])
  f:close()
  local time = require "time"
  local t0 = time.monotonic()
  local p = io.popen("timeout 20 " .. t.shquote(t.gilua()) .. " " .. t.shquote(script) .. " 2>&1")
  local out = p:read("a")
  local _, _, code = p:close()
  local dt = time.monotonic() - t0
  os.remove(script)
  t.is(out, "main end\n", "daemon threads waiting on a lock, a condition and a queue")
  t.is(code, 0, "... the program exits with status 0 (124: it hung)")
  t.ok(dt < 10, ("... promptly (%.2f s)"):format(dt))
end

t.done_testing()
