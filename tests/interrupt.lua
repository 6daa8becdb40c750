#!/usr/bin/env gilua
-- Ctrl-C in every blocking call: a child gilua blocks, gets SIGINT, and must
-- end with KeyboardInterrupt (on stderr) and a non-zero status within a few
-- seconds. Without the fix these calls went on waiting (or retried on EINTR
-- and lost the Ctrl-C).
local t = require "tap"
local subprocess = require "subprocess"
local time = require "time"

local LIMIT = 5        -- seconds the child has to end after SIGINT

-- Runs `code` in a child gilua; the child prints "ready" just before it
-- blocks (`ready()` in the code). Returns nil on success, else what went
-- wrong.
local function run_case(code, delay)
  local path = t.tmpname(".lua")
  local f = assert(io.open(path, "w"))
  f:write("local function ready() io.stdout:write('ready\\n'); io.stdout:flush() end\n", code)
  f:close()
  local p = subprocess.Popen({t.gilua(), path},
                             {stdout = subprocess.PIPE, stderr = subprocess.PIPE})
  local line = p.stdout:read("l")
  local problem
  if line ~= "ready" then
    problem = "the child did not get ready: " .. tostring(line)
    p:kill()
    p:wait()
    pcall(p.communicate, p, nil, 0.5)
  else
    time.sleep(delay)
    p:send_signal("SIGINT")
    local t0 = time.monotonic()
    local ok, out, err = pcall(p.communicate, p, nil, LIMIT)
    if not ok then
      -- a grandchild may hold the pipes: no reading to their end
      p:kill()
      p:wait()
      pcall(p.communicate, p, nil, 0.5)
      problem = "still running " .. LIMIT .. " s after SIGINT"
    elseif p.returncode == 0 then
      problem = "ended with status 0"
    elseif not (err or ""):find("KeyboardInterrupt", 1, true) then
      problem = ("status %s, no KeyboardInterrupt on stderr: %s"):format(
        tostring(p.returncode), (err or ""):sub(1, 200))
    elseif time.monotonic() - t0 > LIMIT then
      problem = "took too long"
    end
  end
  os.remove(path)
  return problem
end

-- Each case gets one retry: a loaded machine may be slow to get ready.
local function case(name, code, delay)
  local problem = run_case(code, delay or 0.3)
  if problem then
    t.diag(name .. ": first attempt: " .. problem .. "; retrying")
    problem = run_case(code, (delay or 0.3) * 3)
  end
  t.ok(problem == nil, "Ctrl-C in " .. name .. ": KeyboardInterrupt, status not 0", problem)
end

local MP = 'local mp = require "multiprocessing"\n'

case("Connection.recv", MP .. [[
local a, b = mp.Pipe()
ready()
a:recv()
]])

case("Connection.recv_bytes", MP .. [[
local a, b = mp.Pipe()
ready()
a:recv_bytes()
]])

case("Connection.send (the reader never reads)", MP .. [[
local a, b = mp.Pipe()
ready()
a:send_bytes(string.rep("x", 1 << 24))
]])

case("Connection.poll(nil)", MP .. [[
local a, b = mp.Pipe()
ready()
a:poll(nil)
]])

case("multiprocessing.connection.wait", MP .. [[
local a, b = mp.Pipe()
ready()
mp.connection.wait({a})
]])

case("multiprocessing.Queue.get", MP .. [[
local q = mp.Queue()
ready()
q:get()
]])

case("multiprocessing.Queue.get with a timeout", MP .. [[
local q = mp.Queue()
ready()
q:get(true, 60)
]])

case("multiprocessing.Queue.get behind another reader", MP .. [[
local threading = require "threading"
local q = mp.Queue()
threading.Thread{daemon = true, target = function() q:get() end}:start()
require("time").sleep(0.2)
ready()
q:get()
]])

case("multiprocessing.SimpleQueue.get", MP .. [[
local q = mp.SimpleQueue()
ready()
q:get()
]])

case("multiprocessing.Lock.acquire", MP .. [[
local l = mp.Lock()
l:acquire()
ready()
l:acquire()
]])

case("multiprocessing.Event.wait", MP .. [[
local e = mp.Event()
ready()
e:wait()
]])

case("Process.join", MP .. [[
local p = mp.Process{target = function() require("time").sleep(30) end, daemon = true}
p:start()
ready()
p:join()
]])

case("a manager proxy call", MP .. [[
local m = mp.Manager()
local q = m:Queue()
ready()
q:get()
]], 0.5)

case("Popen.wait", [[
local subprocess = require "subprocess"
local p = subprocess.Popen({"sleep", "30"})
ready()
local ok, e = pcall(p.wait, p)
p:kill(); p:wait()
error(e, 0)
]])

case("Popen.communicate", [[
local subprocess = require "subprocess"
local p = subprocess.Popen({"sleep", "30"}, {stdout = subprocess.PIPE})
ready()
local ok, e = pcall(p.communicate, p)
p:kill(); p:wait()
error(e, 0)
]])

case("asyncio.sleep", [[
local asyncio = require "asyncio"
asyncio.run(asyncio.async(function()
  ready()
  asyncio.sleep(30):await()
end)())
]])

-- A loop of short runs: the Ctrl-C lands anywhere (in posix_spawn, in the
-- wait, in Lua between them). Several children, each must stop.
do
  local loop = [[
local subprocess = require "subprocess"
ready()
while true do subprocess.run({"true"}) end
]]
  for i = 1, 4 do
    case("a loop of subprocess.run{'true'} (" .. i .. ")", loop, 0.2 + 0.1 * i)
  end
end

t.done_testing()
