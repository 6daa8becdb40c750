#!/usr/bin/env gilua
-- subprocess: communicate (1 MiB both ways, both outputs at once, input the
-- child does not read), timeouts that keep the partial output, kill() then
-- communicate(), wait(timeout) with and without pidfds, broken pipes that
-- do not kill us, Ctrl-C while waiting.
local t = require "tap"
local subprocess = require "subprocess"
local _subprocess = require "_subprocess"
local util = require "support.util"

local run, Popen, PIPE = subprocess.run, subprocess.Popen, subprocess.PIPE
local TimeoutExpired = subprocess.TimeoutExpired

local MiB = string.rep("0123456789abcde\n", 65536)

-- 1 MiB through communicate, in and out at once --------------------------------------
do
  local p = Popen({"cat"}, {stdin = PIPE, stdout = PIPE})
  local out, err = p:communicate(MiB)
  t.ok(out == MiB, "1 MiB in and 1 MiB out of cat through communicate (" .. #out .. " bytes)")
  t.is(err, nil, "stderr nil when not piped")
  t.is(p.returncode, 0, "communicate waited: returncode 0")
  t.is(io.type(p.stdout), "closed file", "communicate closed stdout")
  t.is(io.type(p.stdin), "closed file", "... and stdin")

  -- cat writes both to stdout and (through tee) to stderr: 3 pipes full at once
  local r = run({"sh", "-c", "tee /dev/stderr"}, {input = MiB, capture_output = true})
  t.ok(r.stdout == MiB and r.stderr == MiB, "1 MiB in, 1 MiB on stdout and 1 MiB on stderr: no deadlock")

  r = run({"sh", "-c", "head -c 4000000 /dev/zero; head -c 3000000 /dev/zero >&2"}, {capture_output = true})
  t.ok(#r.stdout == 4000000 and #r.stderr == 3000000, "4 MB on stdout then 3 MB on stderr")

  r = run({"head", "-c", "10"}, {input = MiB, capture_output = true})
  t.is(r.stdout, "0123456789", "a child that reads 10 bytes of 1 MiB: its output")
  t.is(r.returncode, 0, "... and no broken pipe kills us (SIGPIPE is kept off our writes)")

  r = run({"cat"}, {input = "", capture_output = true})
  t.is(r.stdout, "", "input = '': the child reads end of file")
  r = run({"wc", "-c"}, {input = MiB:sub(1, 100000), capture_output = true})
  t.is(tonumber(r.stdout), 100000, "100000 bytes counted by wc")
end

-- What Popen files read before communicate is kept -----------------------------------
do
  local p = Popen({"printf", "line1\nline2\nline3\n"}, {stdout = PIPE})
  t.is(p.stdout:read("l"), "line1", "read a line first")
  local out = p:communicate()
  t.is(out, "line2\nline3\n", "communicate returns the rest, including what stdio had buffered")

  p = Popen({"cat"}, {stdin = PIPE, stdout = PIPE})
  p.stdin:write("written before, ")
  out = p:communicate("and during")
  t.is(out, "written before, and during", "what was written to stdin before communicate goes first")
end

-- Writing to a child that has ended --------------------------------------------------
do
  local p = Popen({"true"}, {stdin = PIPE})
  p:wait()
  local ok, msg, code = p.stdin:write(string.rep("x", 200000))
  t.is(ok, nil, "writing to the stdin of an ended child fails ...")
  t.is(code, 32, "... with EPIPE (" .. tostring(msg) .. "), and we live")
  t.lives(function() p.stdin:close() end, "closing it is fine")
  p = Popen({"true"}, {stdin = PIPE})
  p:wait()
  p.stdin:write("pending in the buffer")
  t.lives(function() p:communicate() end, "communicate after the child ended, data pending: no error")
end

-- Timeouts ---------------------------------------------------------------------------
do
  local dt, ok, e = util.timed(pcall, run, {"sleep", "10"}, {timeout = 0.3})
  t.ok(not ok and TimeoutExpired:is(e), "run with timeout: TimeoutExpired")
  t.between(dt, 0.28, 2, "... after about the timeout (" .. ("%.3f"):format(dt) .. " s)")
  t.is(e and e.timeout, 0.3, "... timeout field")
  t.is(e and e.cmd[1], "sleep", "... cmd field")
  t.is(e and e.output, nil, "... output nil when nothing was read")

  dt, ok, e = util.timed(pcall, run, {"sh", "-c", "echo partial; echo perr >&2; exec sleep 10"},
                         {capture_output = true, timeout = 0.4})
  t.ok(not ok and TimeoutExpired:is(e), "run capturing output with timeout: TimeoutExpired")
  t.is(e and e.output, "partial\n", "... keeps the output read so far")
  t.is(e and e.stdout, "partial\n", "... also as stdout")
  t.is(e and e.stderr, "perr\n", "... and stderr so far")
  t.between(dt, 0.38, 2, "... after about the timeout")

  -- The documented pattern: communicate(timeout), kill(), communicate().
  -- (`exec sleep`: a grandchild holding the pipe would keep communicate
  -- waiting for its end, in Python as here.)
  local p = Popen({"sh", "-c", "echo one; sleep 0.6; echo two; exec sleep 10"},
                  {stdout = PIPE, stderr = PIPE})
  ok, e = pcall(p.communicate, p, nil, 0.3)
  t.ok(not ok and TimeoutExpired:is(e), "Popen.communicate(nil, 0.3): TimeoutExpired")
  t.is(e and e.output, "one\n", "... with the output so far")
  ok, e = pcall(p.communicate, p, {timeout = 0.6})
  t.ok(not ok and TimeoutExpired:is(e), "a second communicate{timeout = 0.6}: TimeoutExpired again")
  t.is(e and e.output, "one\ntwo\n", "... the output so far includes the first part")
  p:kill()
  local out, err = p:communicate()
  t.is(out, "one\ntwo\n", "kill() then communicate() collects all of it")
  t.is(err, "", "... stderr empty")
  t.is(p.returncode, -9, "... and the child, killed: -9")

  -- input partly written when the timeout comes, then the rest
  p = Popen({"sh", "-c", "sleep 0.5; cat"}, {stdin = PIPE, stdout = PIPE})
  ok, e = pcall(p.communicate, p, MiB, 0.2)
  t.ok(not ok and TimeoutExpired:is(e), "1 MiB to a child that sleeps first: TimeoutExpired")
  out = p:communicate()
  t.ok(out == MiB, "communicate() again finishes the input and returns all 1 MiB")

  -- wait(timeout)
  p = Popen({"sleep", "10"})
  dt, ok, e = util.timed(pcall, p.wait, p, 0.25)
  t.ok(not ok and TimeoutExpired:is(e), "wait(0.25) on a running child: TimeoutExpired")
  t.between(dt, 0.23, 2, "... after about 0.25 s")
  dt, ok, e = util.timed(pcall, p.wait, p, {timeout = 0})
  t.ok(not ok and TimeoutExpired:is(e), "wait{timeout = 0}: TimeoutExpired at once")
  t.ok(dt < 0.2, "... without waiting")
  p:kill()
  t.is(p:wait(5), -9, "wait(5) after kill: -9")
  p = Popen({"sleep", "0.2"})
  dt = util.timed(p.wait, p, 5)
  t.between(dt, 0.15, 1.5, "wait(5) ends when the child does (" .. ("%.3f"):format(dt) .. " s)")

  -- the fallback of timed waits (no pidfd): growing naps
  local had = _subprocess._use_pidfd(false)
  t.ok(had ~= nil, "timed waits above used " .. (had and "pidfds" or "the fallback (no pidfd here)"))
  p = Popen({"sleep", "0.2"})
  dt, ok, e = util.timed(pcall, p.wait, p, 0.05)
  t.ok(not ok and TimeoutExpired:is(e), "without pidfd: wait(0.05) on a running child times out")
  dt = util.timed(p.wait, p, 5)
  t.between(dt, 0.1, 1.5, "without pidfd: wait(5) ends soon after the child")
  local r = run({"sleep", "0.1"}, {timeout = 5})
  t.is(r.returncode, 0, "without pidfd: run with a timeout")
  ok, e = pcall(run, {"sleep", "5"}, {timeout = 0.1})
  t.ok(not ok and TimeoutExpired:is(e), "without pidfd: run times out")
  _subprocess._use_pidfd(had)

  -- call with timeout
  ok, e = pcall(subprocess.call, {"sleep", "10"}, {timeout = 0.2})
  t.ok(not ok and TimeoutExpired:is(e), "call with timeout: TimeoutExpired")
  ok, e = pcall(subprocess.check_output, {"sh", "-c", "echo so-far; exec sleep 10"}, {timeout = 0.3})
  t.ok(not ok and TimeoutExpired:is(e), "check_output with timeout: TimeoutExpired")
  t.is(e and e.output, "so-far\n", "... with the output so far")
end

-- communicate from two threads ------------------------------------------------------
do
  local p = Popen({"sleep", "0.3"}, {stdout = PIPE})
  local th = util.go(function() p:communicate() end)
  util.wait_until(function() return p._comm ~= nil end, 2)
  local ok, e = pcall(p.communicate, p)
  th:join()
  t.ok(ok or RuntimeError:is(e), "communicate on one Popen from two threads: no crash (" ..
       tostring(ok or e) .. ")")
  t.is(p:wait(), 0, "... the child ended normally")
end

-- Ctrl-C while waiting: KeyboardInterrupt, and run kills and collects its child ------
do
  local child = [[
local subprocess = require "subprocess"
local time = require "time"
io.write("ready\n"); io.stdout:flush()
local t0 = time.monotonic()
local ok, e = pcall(subprocess.run, {"sleep", "10"})
io.write(tostring(e), " ", ("%.1f"):format(time.monotonic() - t0), "\n")
local p = subprocess.Popen({"sleep", "10"}, {stdout = subprocess.PIPE})
io.write("ready\n"); io.stdout:flush()
ok, e = pcall(p.communicate, p)
io.write(tostring(e), "\n")
p:kill(); p:wait()
io.write(subprocess.check_output({"sh", "-c", "ps -o stat= --ppid " .. os.getpid() .. " | grep -c Z || true"}))
]]
  local path = os.tmpname()
  local f = io.open(path, "w"); f:write(child); f:close()
  local p = Popen({t.gilua(), path}, {stdout = PIPE})
  t.is(p.stdout:read("l"), "ready", "child gilua started")
  require("time").sleep(0.3)
  p:send_signal("SIGINT")
  local line = p.stdout:read("l")
  t.like(line, "^KeyboardInterrupt 0%.%d$", "Ctrl-C during run(): KeyboardInterrupt at once")
  t.is(p.stdout:read("l"), "ready", "the child went on")
  require("time").sleep(0.3)
  p:send_signal("SIGINT")
  t.is(p.stdout:read("l"), "KeyboardInterrupt", "Ctrl-C during communicate(): KeyboardInterrupt")
  t.is(p.stdout:read("l"), "0", "no zombie left in the child gilua")
  t.is(p:wait(), 0, "the child gilua ended well")
  os.remove(path)
end

t.done_testing()
