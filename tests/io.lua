#!/usr/bin/env gilua
-- io and os.execute under the GIL: blocking reads, writes, process waits
-- release it; files behave as in Lua.
local t = require "tap"
local threading = require "threading"
local time = require "time"
local util = require "support.util"

-- A thread blocked in io.read on a pipe does not stop another thread from
-- ticking (child gilua fed by `(sleep 0.5; echo hi) |`).
do
  local r = t.run([[
local threading = require "threading"
local time = require "time"
local line
local reader = threading.Thread{ name = "reader", target = function() line = io.read("l") end }
reader:start()
local ticks = 0
while reader:is_alive() do ticks = ticks + 1; time.sleep(0.02) end
reader:join()
io.write(tostring(line), " ", ticks, "\n")
]], { stdin = "sleep 0.5; echo hi" })
  local line, ticks = r.stdout:match("^(%S+) (%d+)\n$")
  t.is(r.status, 0, "reader in a thread: child ran (" .. r.stderr .. ")")
  t.is(line, "hi", "the thread read the line from the pipe")
  t.ok(tonumber(ticks) and tonumber(ticks) >= 8,
       "main kept ticking while a thread was blocked in io.read (" .. tostring(ticks) .. " ticks)")
end

do -- the same with the main thread blocked in io.read and a thread ticking
  local r = t.run([[
local threading = require "threading"
local time = require "time"
local ticks, stop = 0, false
local tk = threading.Thread{ target = function()
  while not stop do ticks = ticks + 1; time.sleep(0.02) end
end }
tk:start()
local line = io.stdin:read("l")
local after = io.read("a")
stop = true; tk:join()
io.write(tostring(line), " ", ticks, " ", #after, "\n")
]], { stdin = "sleep 0.5; echo hello; echo more" })
  local line, ticks, rest = r.stdout:match("^(%S+) (%d+) (%d+)\n$")
  t.is(line, "hello", "main read the line from the pipe")
  t.ok(tonumber(ticks) and tonumber(ticks) >= 8,
       "a thread kept ticking while main was blocked in io.stdin:read (" .. tostring(ticks) .. ")")
  t.is(rest, "5", "read('a') got the rest ('more\\n')")
end

do -- io.lines() on a slow pipe
  local r = t.run([[
local threading = require "threading"
local time = require "time"
local ticks, stop = 0, false
local tk = threading.Thread{ target = function()
  while not stop do ticks = ticks + 1; time.sleep(0.02) end
end }
tk:start()
local n = 0
for l in io.lines() do n = n + tonumber(l) end
stop = true; tk:join()
io.write(n, " ", ticks, "\n")
]], { stdin = "echo 1; sleep 0.3; echo 2; sleep 0.3; echo 3" })
  local sum, ticks = r.stdout:match("^(%d+) (%d+)\n$")
  t.is(sum, "6", "io.lines() on a pipe read every line")
  t.ok(tonumber(ticks) and tonumber(ticks) >= 10,
       "a thread ticked while io.lines waited (" .. tostring(ticks) .. ")")
end

do -- a write blocked on a full pipe releases the GIL
  local r = t.run([[
local threading = require "threading"
local time = require "time"
local ticks, stop = 0, false
local tk = threading.Thread{ target = function()
  while not stop do ticks = ticks + 1; time.sleep(0.02) end
end }
tk:start()
local chunk = string.rep("x", 65536)
local t0 = time.monotonic()
for _ = 1, 32 do io.write(chunk) end
io.stdout:flush()
local dt = time.monotonic() - t0
stop = true; tk:join()
io.stderr:write(("ticks %d dt %.2f\n"):format(ticks, dt))
]], { pipe_to = "sleep 0.5; wc -c" })
  local ticks, dt = r.stderr:match("ticks (%d+) dt ([%d.]+)")
  t.like(r.stdout, "^%s*2097152%s*$", "2 MiB went through the pipe")
  t.ok(tonumber(dt) and tonumber(dt) >= 0.3, "the writer was blocked by the slow reader (" .. tostring(dt) .. " s)")
  t.ok(tonumber(ticks) and tonumber(ticks) >= 8,
       "a thread ticked while io.write was blocked on a full pipe (" .. tostring(ticks) .. ")")
end

-- File round trip ----------------------------------------------------------------------------------
do
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  t.is(io.type(f), "file", "io.type of an open file")
  t.is(f:write("alpha\n", 42, "\n", 3.5, "\n"), f, "write returns the file")
  f:write("last line without newline")
  f:close()
  t.is(io.type(f), "closed file", "io.type of a closed file")

  local lines = {}
  for l in io.lines(path) do lines[#lines + 1] = l end
  t.is(#lines, 4, "io.lines read four lines")
  t.is(lines[1], "alpha", "first line")
  t.is(lines[4], "last line without newline", "last line")

  f = assert(io.open(path, "r"))
  t.is(f:read("l"), "alpha", "read('l')")
  t.is(f:read("n"), 42, "read('n') integer")
  t.is(f:read("n"), 3.5, "read('n') float")
  t.is(f:read("L"), "\n", "read('L') keeps the newline")
  t.is(f:read(4), "last", "read(4)")
  t.is(f:read("a"), " line without newline", "read('a') the rest")
  t.is(f:read("a"), "", "read('a') at the end is empty")
  t.is(f:read("l"), nil, "read('l') at the end is nil")
  t.is(f:seek("set", 2), 2, "seek('set', 2)")
  t.is(f:read(3), "pha", "read after seek")
  t.is(f:seek("end"), 6 + 3 + 4 + 25, "seek('end') is the size")
  f:close()

  f = assert(io.open(path, "a"))
  f:write("\nappended")
  f:close()
  local all = {}
  for l in io.lines(path, "L") do all[#all + 1] = l end
  t.is(all[#all], "appended", "append mode adds at the end")
  t.is(#all, 5, "five lines now")

  local n = 0
  f = assert(io.open(path))
  for _ in f:lines(1) do n = n + 1 end
  f:close()
  t.is(n, 6 + 3 + 4 + 25 + 9, "f:lines(1) iterates over every byte")

  -- binary data round trip
  local bin = {}
  for i = 0, 255 do bin[#bin + 1] = string.char(i) end
  bin = table.concat(bin):rep(100)
  f = assert(io.open(path, "wb")); f:write(bin); f:close()
  f = assert(io.open(path, "rb")); local back = f:read("a"); f:close()
  t.ok(back == bin, "binary data round trip (25600 bytes)")
  os.remove(path)

  local nf, msg, code = io.open("/nonexistent/dir/file.txt")
  t.is(nf, nil, "io.open of a missing file returns nil")
  t.like(msg, "No such file", "... with a message")
  t.is(code, 2, "... and errno 2")
end

-- A big file write and read in a thread while the main thread keeps running ----------------
do
  local path = os.tmpname()
  local data = string.rep("0123456789abcdef", 65536)   -- 1 MiB
  local ok_rw
  local th = threading.Thread{ target = function()
    for _ = 1, 8 do
      local f = assert(io.open(path, "wb"))
      f:write(data); f:close()
      f = assert(io.open(path, "rb"))
      local back = f:read("a"); f:close()
      ok_rw = (ok_rw ~= false) and back == data
    end
  end }
  th:start()
  local ticks = 0
  while th:is_alive() do ticks = ticks + 1; time.sleep(0.001) end
  th:join()
  t.ok(ok_rw, "a thread wrote and read back 1 MiB eight times")
  t.ok(ticks >= 1, "main ran meanwhile")
  os.remove(path)
end

-- io.popen and os.execute ------------------------------------------------------------------------
do
  local p = io.popen("echo popen-out; exit 3")
  t.is(p:read("l"), "popen-out", "io.popen reads the command's output")
  local ok, how, code = p:close()
  t.ok(ok == nil and how == "exit" and code == 3, "popen close returns nil, 'exit', 3")

  local ticks, dt, out = util.ticks_during(function()
    local q = io.popen("sleep 0.3; echo late")
    local s = q:read("a")
    q:close()
    return s
  end)
  t.is(out, "late\n", "popen read after the command slept")
  t.ok(ticks >= 5, "another thread ticked while popen's read waited (" .. ticks .. ")")

  local w = io.popen("cat > /dev/null", "w")
  t.ok(w:write("some input\n"), "io.popen in write mode")
  t.ok(w:close(), "... closes with success")

  local ticks2, dt2, a, b, c = util.ticks_during(os.execute, "sleep 0.3")
  t.ok(a == true and b == "exit" and c == 0, "os.execute returns true, 'exit', 0")
  t.between(dt2, 0.28, 2, "os.execute('sleep 0.3') waited for the command")
  t.ok(ticks2 >= 5, "another thread ticked while os.execute waited (" .. ticks2 .. ")")
  local a3, b3, c3 = os.execute("exit 3")
  t.ok(a3 == nil and b3 == "exit" and c3 == 3, "os.execute('exit 3') returns nil, 'exit', 3")
  t.is(os.execute(), true, "os.execute() says a shell is available")
end

-- io.write / io.read defaults and io.output to a file ----------------------------------------------
do
  local path = os.tmpname()
  local old = io.output()
  io.output(path)
  io.write("via io.write ", 1, "\n")
  io.close()
  io.output(old)
  local f = io.open(path); local s = f:read("a"); f:close()
  t.is(s, "via io.write 1\n", "io.output(path) + io.write")
  local oldin = io.input()
  io.input(path)
  t.is(io.read("l"), "via io.write 1", "io.input(path) + io.read")
  io.close(io.input())
  io.input(oldin)
  os.remove(path)
end

-- Ctrl-C while close() waits for another thread's read: KeyboardInterrupt --------
do
  local subprocess = require "subprocess"
  local child = [[
local threading = require "threading"
local time = require "time"
local f = io.popen("sleep 3; echo late")
local th = threading.Thread{ daemon = true, target = function() f:read("a") end }
th:start()
time.sleep(0.2)
io.write("ready\n"); io.stdout:flush()
local t0 = time.monotonic()
local ok, e = pcall(f.close, f)
io.write(tostring(ok or e), " ", ("%.1f"):format(time.monotonic() - t0), "\n")
io.stdout:flush()
os.exit(0)
]]
  local path = t.tmpname(".lua")
  local fh = io.open(path, "w"); fh:write(child); fh:close()
  local p = subprocess.Popen({t.gilua(), path}, {stdout = subprocess.PIPE})
  t.is(p.stdout:read("l"), "ready", "child: a thread reads a pipe, the main thread closes it")
  time.sleep(0.3)
  p:send_signal("SIGINT")
  local line = p.stdout:read("l") or ""
  local secs = tonumber(line:match(" (%d+%.%d)$"))
  t.like(line, "^KeyboardInterrupt ", "Ctrl-C ends close()'s wait with KeyboardInterrupt", line)
  t.ok(secs and secs < 2.5, "... before the reader is done (after " .. tostring(secs) .. " s)")
  p:wait()
  os.remove(path)
end

t.done_testing()
