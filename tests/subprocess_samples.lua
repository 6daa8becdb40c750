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
                  "sous_process", "timeout_popen" }

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
t.between(total, 1.9, 4.5, ("the six samples in six threads took %.2f s: their waits overlapped"):format(total))

t.done_testing()
