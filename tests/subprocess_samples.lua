#!/usr/bin/env gilua
-- The course's subprocess examples (samples/subprocess/) run and print what
-- the course says. They run at once, one thread each: their waits overlap,
-- so the whole takes about the longest one (2 s), not the sum.
local t = require "tap"
local subprocess = require "subprocess"
local util = require "support.util"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local dir = here .. "/../samples/subprocess/"

local samples = { "run_capture", "shell_pipe", "timeout", "communicate_input",
                  "sous_process", "timeout_popen", "poll_send_signal" }

local results, threads = {}, {}
local t0 = util.clock()
for i, name in ipairs(samples) do
  threads[i] = util.go(function()
    local s0 = util.clock()
    local r = subprocess.run({t.gilua(), dir .. name .. ".lua"},
                             {capture_output = true, timeout = 60})
    r.elapsed = util.clock() - s0
    results[name] = r
  end)
end
for _, th in ipairs(threads) do th:join() end
local total = util.clock() - t0

local function check(name, fn)
  local r = results[name]
  t.ok(r and r.returncode == 0, name .. ".lua ran", r and r.stderr or "no result")
  if r then fn(r.stdout, r.elapsed) end
end

check("run_capture", function(out)
  t.like(out, "^total %d+\n", "run_capture: ls -l's listing")
  t.like(out, "\n\n0\n$", "... then the returncode 0")
end)
check("shell_pipe", function(out)
  t.is(out, "6\n", "shell_pipe: echo hello | wc -c prints 6")
end)
check("timeout", function(out, dt)
  t.is(out, "Timeout\n", "timeout: prints Timeout")
  t.between(dt, 1.9, 5, "... after the 2 s timeout")
end)
check("communicate_input", function(out)
  t.is(out, "hellohello\n", "communicate_input: hellohello")
end)
check("sous_process", function(out, dt)
  t.like(out, "BYE !\n\n$", "sous_process: the listing, BYE ! and split's last empty line")
  t.between(dt, 1.9, 5, "... after the child's sleep 2")
end)
check("timeout_popen", function(out)
  t.like(out, "TimeoutExpired", "timeout_popen: communicate(timeout) raised TimeoutExpired")
  t.like(out, "sortie « début », returncode %-9", "... kill() then communicate() got the output, -9")
  t.like(out, "returncode %-15 %(SIGTERM%)", "... the Timer's terminate(): -15")
end)
check("poll_send_signal", function(out)
  t.like(out, "^pid %d+, poll%(%) = nil %(en cours%)\n", "poll_send_signal: poll() is nil (None) while the child runs")
  local n = tonumber(out:match("poll%(%) = 3 après (%d+) tours d'attente, returncode = 3\n"))
  t.between(n, 2, 10, "... then its returncode, 3, once it has ended by itself (0.5 s later)")
  t.like(out, "send_signal%(SIGUSR1%) : l'enfant répond « SIGUSR1 reçu, je termine », wait%(%) = 0\n",
         "... send_signal: the child caught SIGUSR1 and ended with 0")
  t.like(out, "terminate%(%)%s+: wait%(%) = %-15, poll%(%) = %-15\n", "... terminate(): SIGTERM, -15")
  t.like(out, "kill%(%)%s+: wait%(%) = %-9, poll%(%) = %-9\n", "... kill(): SIGKILL, -9")
  t.like(out, "send_signal%(12%)%s+: wait%(%) = %-12, poll%(%) = %-12\n", "... send_signal(12): -12")
end)
t.between(total, 1.9, 4.5, ("the seven samples in seven threads took %.2f s: their waits overlapped"):format(total))

t.done_testing()
