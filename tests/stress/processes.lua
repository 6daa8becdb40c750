#!/usr/bin/env gilua
--[[
stress/processes.lua: 2,000 processes (STRESS_SCALE multiplies the count)
started 40 at a time, ending every way a process ends: a normal return, an
exit code, an error, terminate(), kill(), a result sent back through a
Pipe, and some that are never joined (start() reaps them later, as
Python's _cleanup does). Afterwards: every exit code is the expected one,
no child of this process is left (zombie or alive) and this process has
exactly the descriptors it had before.
]]
local t = require "tap"
local mp = require "multiprocessing"
local time = require "time"

local SCALE = tonumber(os.getenv("STRESS_SCALE") or "") or 1
local N = math.floor(2000 * SCALE)
local WAVE = 40
local pid = os.getpid()

local function lines(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

-- Our descriptors, as /proc sees them (the pipe of io.popen is counted
-- every time, so it cancels out).
local function fds()
  collectgarbage(); collectgarbage()   -- descriptors of garbage objects
  return lines("exec ls -l /proc/" .. pid .. "/fd") end

-- Our children: "pid state" for each, the ps that lists them left out.
local function children()
  local out = {}
  for _, l in ipairs(lines("exec ps -o pid=,stat=,comm= --ppid " .. pid)) do
    if not l:match("%sps$") then out[#out + 1] = l end
  end
  return out
end

local fds0 = fds()
local function fdlist(l)
  local out = {}
  for _, x in ipairs(l) do out[#out + 1] = x:match("%d+ %-> .*$") end
  return table.concat(out, "; ")
end
local kinds = { "return", "exit", "error", "terminate", "kill", "pipe", "dropped" }
local expect = {
  ["return"] = function() return 0 end,
  exit = function(i) return i % 100 + 1 end,
  error = function() return 1 end,
  kill = function() return -9 end,
  pipe = function() return 0 end,
  dropped = function() return 0 end,
}
expect.terminate = function() return -15 end

local bad, badmsg, pipes_ok, started = 0, nil, 0, 0
local dropped = {}
local t0 = time.monotonic()
local i = 0
while i < N do
  local wave = {}
  for _ = 1, math.min(WAVE, N - i) do
    i = i + 1
    local n, kind = i, kinds[i % #kinds + 1]
    local p, a, b
    if kind == "return" or kind == "dropped" then
      p = mp.Process{ target = function() end }
    elseif kind == "exit" then
      p = mp.Process{ target = function() os.exit(n % 100 + 1) end }
    elseif kind == "error" then
      -- (its report goes to /dev/null: 280 tracebacks would hide the TAP)
      p = mp.Process{ target = function()
        io.stderr = assert(io.open("/dev/null", "w"))
        error("planned failure " .. n, 0)
      end }
    elseif kind == "terminate" or kind == "kill" then
      p = mp.Process{ target = function() time.sleep(60) end }
    else
      a, b = mp.Pipe()
      p = mp.Process{ target = function() b:send(n * 2) end }
    end
    p:start()
    started = started + 1
    wave[#wave + 1] = { p = p, n = n, kind = kind, a = a, b = b }
  end
  for _, w in ipairs(wave) do
    local p = w.p
    if w.kind == "terminate" then p:terminate()
    elseif w.kind == "kill" then p:kill() end
    if w.kind == "pipe" then
      w.b:close()
      if w.a:poll(30) and w.a:recv() == w.n * 2 then pipes_ok = pipes_ok + 1 end
      w.a:close()
    end
    if w.kind == "dropped" then
      dropped[#dropped + 1] = w
    else
      p:join(60)
      local want = expect[w.kind](w.n)
      if p.exitcode ~= want then
        bad = bad + 1
        badmsg = badmsg or ("process %d (%s): exit code %s, expected %s")
          :format(w.n, w.kind, tostring(p.exitcode), want)
      end
      p:close()
    end
  end
end
-- The dropped ones: never joined; they end on their own and start()
-- reaped those that had ended. Wait for the last ones to be gone.
local deadline = time.monotonic() + 60
for _, w in ipairs(dropped) do
  while w.p:is_alive() and time.monotonic() < deadline do time.sleep(0.01) end
end
local dt = time.monotonic() - t0

t.is(started, N, N .. " processes started")
t.is(bad, 0, "every exit code as expected" .. (badmsg and (": " .. badmsg) or ""))
local npipes = 0
for k = 1, N do if kinds[k % #kinds + 1] == "pipe" then npipes = npipes + 1 end end
t.is(pipes_ok, npipes, "every result sent through a Pipe arrived")
local dropped_done = 0
for _, w in ipairs(dropped) do if w.p.exitcode == 0 then dropped_done = dropped_done + 1 end end
t.is(dropped_done, #dropped, "processes never joined were reaped with exit code 0")
local kids = children()
t.is(#kids, 0, "no child left, zombie or alive" .. (#kids > 0 and (": " .. table.concat(kids, ", ")) or ""))
local fds1 = fds()
if not t.is(#fds1, #fds0, "as many descriptors open as before (" .. #fds0 .. ")") then
  t.diag("before: " .. fdlist(fds0))
  t.diag("after:  " .. fdlist(fds1))
end
t.diag(("%-32s %9d procs  %7.2f s %10.1f processes/s"):format("multiprocessing.Process", N, dt, N / dt))
t.done_testing()
