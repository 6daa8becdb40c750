#!/usr/bin/env gilua
-- asyncio subprocesses: create_subprocess_exec / _shell with piped stdio,
-- communicate (input larger than a pipe's buffer), wait, returncode,
-- reading stdout line by line, several children at once, and the loop
-- staying free while children run.
local t = require "tap"
local asyncio = require "asyncio"
local time = require "time"

local async, run = asyncio.async, asyncio.run
local PIPE = asyncio.subprocess.PIPE

run(async(function()
  local big = ("0123456789abcdef\n"):rep(20000)       -- 340 KB, over a pipe's 64 KB
  local p = asyncio.create_subprocess_exec("cat", {stdin = PIPE, stdout = PIPE}):await()
  t.ok(math.type(p.pid) == "integer" and p.pid > 0, "the child has a pid")
  local out, err = p:communicate(big):await()
  t.is(#out, #big, "communicate: cat gives back all of a large input")
  t.ok(out == big and err == nil, "... intact; stderr not piped gives nil")
  t.is(p.returncode, 0, "returncode")

  local s = asyncio.create_subprocess_shell("echo out; echo err >&2; exit 3",
                                            {stdout = PIPE, stderr = PIPE}):await()
  local o, e = s:communicate():await()
  t.ok(o == "out\n" and e == "err\n", "create_subprocess_shell: stdout and stderr apart")
  t.is(s:wait():await(), 3, "wait() gives the exit status")

  local l = asyncio.create_subprocess_exec("sh", "-c", "for i in 1 2 3; do echo line$i; done",
                                           {stdout = PIPE}):await()
  local lines = {}
  while true do
    local line = l.stdout:readline():await()
    if line == "" then break end
    lines[#lines + 1] = line
  end
  l:wait():await()
  t.is(table.concat(lines), "line1\nline2\nline3\n", "reading a child's stdout line by line")

  -- five children sleeping 0.3 s at once, while a task ticks
  local ticks = 0
  local ticker = asyncio.create_task(async(function()
    while true do ticks = ticks + 1; asyncio.sleep(0.01):await() end
  end)())
  local t0 = time.monotonic()
  local ps = {}
  for i = 1, 5 do ps[i] = asyncio.create_subprocess_exec("sleep", "0.3"):await() end
  local waits = {}
  for i = 1, 5 do waits[i] = ps[i]:wait() end
  asyncio.gather(table.unpack(waits)):await()
  local dt = time.monotonic() - t0
  ticker:cancel()
  t.between(dt, 0.25, 1.5, "five 0.3 s children overlap")
  t.ok(ticks >= 10, "the loop ran meanwhile (" .. ticks .. " ticks)")

  t.raises(function() asyncio.create_subprocess_exec("/no/such/program"):await() end,
           FileNotFoundError, "a missing program: FileNotFoundError")

  local k = asyncio.create_subprocess_exec("sleep", "10"):await()
  k:kill()
  local code = k:wait():await()
  t.ok(code and code < 0, "kill(): a negative returncode (the signal)")
end)())

t.done_testing()
