#!/usr/bin/env gilua
-- subprocess: run and its results, exit codes and signals, the shell,
-- env and cwd, missing programs, PIPE/STDOUT/DEVNULL/files/descriptors,
-- text mode, Popen's methods, call/check_call/check_output/getoutput,
-- argument errors. (Pipes and timeouts: subprocess_pipes.lua; descriptors,
-- zombies and threads: subprocess_resources.lua.)
local t = require "tap"
local subprocess = require "subprocess"

local run, Popen, PIPE, STDOUT, DEVNULL =
  subprocess.run, subprocess.Popen, subprocess.PIPE, subprocess.STDOUT, subprocess.DEVNULL

-- The module's names ---------------------------------------------------------------------
do
  t.is(PIPE, -1, "PIPE is Python's -1")
  t.is(STDOUT, -2, "STDOUT is Python's -2")
  t.is(DEVNULL, -3, "DEVNULL is Python's -3")
  t.ok(Exception:is(subprocess.SubprocessError("x")), "SubprocessError is an Exception")
  t.ok(subprocess.SubprocessError:is(subprocess.TimeoutExpired({"x"}, 1)),
       "TimeoutExpired is a SubprocessError")
  t.ok(subprocess.SubprocessError:is(subprocess.CalledProcessError(1, {"x"})),
       "CalledProcessError is a SubprocessError")
  t.is(tostring(subprocess.TimeoutExpired({"sleep", "10"}, 2)),
       "subprocess.TimeoutExpired: Command '['sleep', '10']' timed out after 2 seconds",
       "TimeoutExpired reads as Python's")
  t.is(tostring(subprocess.CalledProcessError(3, "exit 3")),
       "subprocess.CalledProcessError: Command 'exit 3' returned non-zero exit status 3.",
       "CalledProcessError reads as Python's")
  t.is(tostring(subprocess.CalledProcessError(-9, {"sleep", "9"})),
       "subprocess.CalledProcessError: Command '['sleep', '9']' died with <Signals.SIGKILL: 9>.",
       "... and says which signal killed the child")
end

-- run: results and exit codes ------------------------------------------------------
do
  local r = run({"true"})
  t.ok(subprocess.CompletedProcess:is(r), "run returns a CompletedProcess")
  t.is(r.returncode, 0, "true: returncode 0")
  t.is(r.stdout, nil, "stdout is nil when not captured")
  t.is(r.stderr, nil, "stderr is nil when not captured")
  t.is(r.args[1], "true", "args is the command given")
  t.is(run({"false"}).returncode, 1, "false: returncode 1")
  t.is(run({"sh", "-c", "exit 42"}).returncode, 42, "exit 42: returncode 42")
  t.is(run({"sh", "-c", "exit 255"}).returncode, 255, "exit 255: returncode 255")
  t.lives(function() r:check_returncode() end, "check_returncode() on 0 does nothing")
  local bad = run({"sh", "-c", "echo out; echo err >&2; exit 3"}, {capture_output = true})
  local e = t.raises(function() bad:check_returncode() end, subprocess.CalledProcessError,
                     "check_returncode() on 3 raises CalledProcessError")
  t.is(e and e.returncode, 3, "... with the returncode")
  t.is(e and e.stdout, "out\n", "... the output (stdout)")
  t.is(e and e.output, "out\n", "... also as output")
  t.is(e and e.stderr, "err\n", "... and stderr")
  t.is(tostring(run({"echo", "hi"}, {capture_output = true})),
       "CompletedProcess(args=['echo', 'hi'], returncode=0, stdout='hi\\n', stderr='')",
       "CompletedProcess reads as Python's repr")
end

-- check = true -----------------------------------------------------------------------
do
  t.lives(function() run({"true"}, {check = true}) end, "check = true with status 0: no error")
  local e = t.raises(function() run({"sh", "-c", "echo partial; exit 5"}, {check = true, capture_output = true}) end,
                     subprocess.CalledProcessError, "check = true with status 5: CalledProcessError")
  t.is(e and e.returncode, 5, "... returncode 5")
  t.is(e and e.cmd[3], "echo partial; exit 5", "... cmd is the command")
  t.is(e and e.output, "partial\n", "... output is what it wrote")
  t.is(e and e.stderr, "", "... stderr is what it wrote on stderr")
end

-- Signals: returncode -N ---------------------------------------------------------
do
  t.is(run({"sh", "-c", "kill -TERM $$"}).returncode, -15, "a child killed by SIGTERM: returncode -15")
  t.is(run({"sh", "-c", "kill -KILL $$"}).returncode, -9, "a child killed by SIGKILL: returncode -9")
  t.is(run({"sh", "-c", "kill -SEGV $$"}).returncode, -11, "a child killed by SIGSEGV: returncode -11")
  local e = t.raises(function() run({"sh", "-c", "kill -KILL $$"}, {check = true}) end,
                     subprocess.CalledProcessError, "check = true on a killed child raises")
  t.like(e and tostring(e) or "", "died with <Signals%.SIGKILL: 9>", "... saying died with SIGKILL")

  local p = Popen({"sleep", "10"})
  t.is(p:poll(), nil, "poll() of a running child: nil")
  p:send_signal("SIGTERM")
  t.is(p:wait(), -15, "send_signal('SIGTERM'): returncode -15")
  p = Popen({"sleep", "10"})
  p:send_signal(2)
  t.is(p:wait(), -2, "send_signal(2) (SIGINT): returncode -2")
  p = Popen({"sleep", "10"})
  p:terminate()
  t.is(p:wait(), -15, "terminate(): SIGTERM")
  p = Popen({"sleep", "10"})
  p:kill()
  t.is(p:wait(), -9, "kill(): SIGKILL")
  t.is(p.returncode, -9, "returncode field set by wait()")
  t.lives(function() p:kill() end, "kill() after the child was collected does nothing")
  t.raises(function() p:send_signal("SIGNOPE") end, ValueError, "an unknown signal name: ValueError")
  t.raises(function() p:send_signal({}) end, TypeError, "a signal that is neither name nor number: TypeError")
end

-- Shell ------------------------------------------------------------------------------
do
  local r = run("echo hello | wc -c", {shell = true, capture_output = true})
  t.is(r.stdout:match("%d+"), "6", "shell = true: a pipeline in /bin/sh -c")
  r = run("echo $0", {shell = true, capture_output = true})
  t.is(r.stdout, "/bin/sh\n", "shell = true runs /bin/sh")
  r = run({"echo $0 $1", "zero", "one"}, {shell = true, capture_output = true})
  t.is(r.stdout, "zero one\n", "shell with an array: the rest are the shell's $0, $1")
  r = run("exit 7", {shell = true})
  t.is(r.returncode, 7, "the shell's exit status is the returncode")
  r = run("echo", {capture_output = true})
  t.is(r.stdout, "\n", "a string without shell is the program alone")
end

-- env and cwd ----------------------------------------------------------------------
do
  local r = run({"sh", "-c", "echo \"$FOO|$HOME\""}, {env = {FOO = "bar", PATH = os.getenv("PATH")}, capture_output = true})
  t.is(r.stdout, "bar|\n", "env replaces the whole environment")
  r = run({"env"}, {env = {A = "1", B = 2}, capture_output = true})
  local lines = {}
  for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
  table.sort(lines)
  t.is(table.concat(lines, ","), "A=1,B=2", "env = {A = '1', B = 2}: exactly those (numbers as strings)")
  r = run({"sh", "-c", "echo $FOO"}, {capture_output = true})
  t.is(r.stdout, "\n", "without env the parent's environment (no FOO)")
  t.ok(run({"sh", "-c", "test -n \"$PATH\""}).returncode == 0, "... which has PATH")
  r = run({"pwd"}, {cwd = "/", capture_output = true})
  t.is(r.stdout, "/\n", "cwd = '/'")
  local dir = os.tmpname()
  os.remove(dir)
  run({"mkdir", dir})
  r = run({"pwd"}, {cwd = dir, capture_output = true})
  t.is(r.stdout, dir .. "\n", "cwd = a new directory")
  local f = io.open(dir .. "/prog.sh", "w")
  f:write("#!/bin/sh\necho from-prog\n")
  f:close()
  run({"chmod", "+x", dir .. "/prog.sh"})
  r = run({"./prog.sh"}, {cwd = dir, capture_output = true})
  t.is(r.stdout, "from-prog\n", "a relative program is found from the new cwd")
  r = run({"prog.sh"}, {env = {PATH = dir}, capture_output = true})
  t.is(r.stdout, "from-prog\n", "a name is looked up in env's PATH, as Python does")
  run({"rm", "-rf", dir})
  local e = t.raises(function() run({"ls"}, {cwd = "/nonexistent/dir"}) end, FileNotFoundError,
                     "a cwd that does not exist: FileNotFoundError")
  t.is(e and e.filename, "/nonexistent/dir", "... naming the directory")
  t.is(e and e.errno, 2, "... errno 2")
  e = t.raises(function() run({"ls"}, {cwd = "/etc/hostname"}) end, NotADirectoryError,
               "a cwd that is a file: NotADirectoryError")
  t.raises(function() run({"true"}, {env = {["A=B"] = "x"}}) end, ValueError,
           "an env name with '=': ValueError")
  t.raises(function() run({"true"}, {env = {A = {}}}) end, TypeError,
           "an env value that is a table: TypeError")
end

-- Missing programs -----------------------------------------------------------------
do
  local e = t.raises(function() run({"no-such-program-gilua"}) end, FileNotFoundError,
                     "a missing program: FileNotFoundError, not a child exiting 127")
  t.is(e and e.filename, "no-such-program-gilua", "... naming the program")
  t.like(e and tostring(e) or "", "%[Errno 2%] No such file or directory: 'no%-such%-program%-gilua'",
         "... reading as Python's")
  e = t.raises(function() Popen({"/no/such/path/prog"}) end, FileNotFoundError,
               "Popen with a missing absolute path: FileNotFoundError")
  t.is(e and e.filename, "/no/such/path/prog", "... naming the path")
  local plain = os.tmpname()                     -- mode 0600: not executable
  e = t.raises(function() run({plain}) end, PermissionError,
               "a file that is not executable: PermissionError")
  os.remove(plain)
  t.raises(function() run({"/tmp"}) end, PermissionError, "a directory: PermissionError")
  t.raises(function() run({"no-such-program-gilua"}, {shell = false, stdout = PIPE, stderr = PIPE}) end,
           FileNotFoundError, "... also with pipes asked for")
  t.raises(function() subprocess.call({"no-such-program-gilua"}) end, FileNotFoundError,
           "call() of a missing program: FileNotFoundError")
  local r = run("no-such-program-gilua 2>/dev/null", {shell = true})
  t.is(r.returncode, 127, "through the shell it is the shell's 127, as in Python")
end

-- STDOUT, DEVNULL, files and descriptors --------------------------------------------
do
  local r = run({"sh", "-c", "echo out; echo err >&2; echo out2"}, {stdout = PIPE, stderr = STDOUT})
  t.is(r.stdout, "out\nerr\nout2\n", "stderr = STDOUT merges stderr into stdout, in order")
  t.is(r.stderr, nil, "... and stderr is nil")
  r = run({"sh", "-c", "echo out; echo err >&2"}, {stdout = DEVNULL, stderr = PIPE})
  t.is(r.stdout, nil, "stdout = DEVNULL: nothing captured")
  t.is(r.stderr, "err\n", "... stderr still piped")
  r = run({"cat"}, {stdin = DEVNULL, capture_output = true})
  t.is(r.stdout, "", "stdin = DEVNULL: the child reads end of file at once")
  r = run({"sh", "-c", "echo err >&2"}, {stderr = DEVNULL, stdout = PIPE})
  t.is(r.stdout, "", "stderr = DEVNULL: nothing reaches stdout")

  local path = os.tmpname()
  local f = io.open(path, "w")
  f:write("first\n")
  run({"echo", "child"}, {stdout = f})
  f:write("last\n")
  f:close()
  t.is(t.slurp(path), "first\nchild\nlast\n",
       "a Lua file as stdout (flushed first: the order is kept)")
  f = io.open(path)
  r = run({"cat"}, {stdin = f, capture_output = true})
  f:close()
  t.is(r.stdout, "first\nchild\nlast\n", "a Lua file as stdin")
  f = io.open(path, "w")
  r = run({"sh", "-c", "echo to-stderr >&2"}, {stderr = f})
  f:close()
  t.is(t.slurp(path), "to-stderr\n", "a Lua file as stderr")
  f = io.open(path, "w")
  run({"sh", "-c", "echo merged; echo also >&2"}, {stdout = f, stderr = STDOUT})
  f:close()
  t.is(t.slurp(path), "merged\nalso\n", "a file as stdout with stderr = STDOUT")
  os.remove(path)

  local p1 = Popen({"echo", "through a pipe"}, {stdout = PIPE})
  local p2 = Popen({"tr", "a-z", "A-Z"}, {stdin = p1.stdout, stdout = PIPE})
  p1.stdout:close()
  local out = p2:communicate()
  p1:wait()
  t.is(out, "THROUGH A PIPE\n", "one child's stdout as another's stdin (a pipeline)")

  -- a descriptor number: the one our io.open got, found in /proc
  local fpath = os.tmpname()
  local fh = io.open(fpath, "w")
  local listing = run({"ls", "-l", "/proc/" .. os.getpid() .. "/fd"}, {capture_output = true}).stdout
  local fd = tonumber(listing:match("(%d+) %-> " .. fpath:gsub("%p", "%%%0") .. "\n"))
  t.ok(fd ~= nil and fd > 2, "found the descriptor of an open file (" .. tostring(fd) .. ")")
  r = run({"sh", "-c", "echo out; echo err >&2"}, {stdout = PIPE, stderr = fd})
  fh:close()
  t.is(r.stdout, "out\n", "stderr = a descriptor number: stdout still piped")
  t.is(t.slurp(fpath), "err\n", "... stderr went to that descriptor")
  os.remove(fpath)
  -- our own 1 as the child's 2 while its 1 is a pipe: the pipe must not win
  local res = t.run([[
local subprocess = require "subprocess"
local r = subprocess.run({"sh", "-c", "echo out; echo err >&2"}, {stdout = subprocess.PIPE, stderr = 1})
io.write("[", r.stdout, "]")
]])
  t.is(res.stdout, "err\n[out\n]", "stderr = 1 with stdout = PIPE: the child's 2 is our 1")
  res = t.run([[
local subprocess = require "subprocess"
subprocess.run({"sh", "-c", "echo swapped"}, {stdout = 2, stderr = 1})
]])
  t.is(res.stderr, "swapped\n", "stdout = 2, stderr = 1: swapped as asked")
  t.raises(function() run({"true"}, {stdout = 987}) end, OSError,
           "a descriptor that is not open: OSError")
  t.raises(function() run({"true"}, {stdout = STDOUT}) end, ValueError,
           "STDOUT for stdout: ValueError")
  t.raises(function() run({"true"}, {stdout = "x"}) end, TypeError,
           "a string as stdout: TypeError")
  local closed = io.open("/etc/hostname")
  closed:close()
  t.raises(function() run({"true"}, {stdin = closed}) end, ValueError,
           "a closed file: ValueError")
end

-- text mode ------------------------------------------------------------------------
do
  local r = run({"printf", "a\r\nb\rc\n"}, {capture_output = true, text = true})
  t.is(r.stdout, "a\nb\nc\n", "text = true: \\r\\n and \\r become \\n")
  r = run({"printf", "a\r\nb"}, {capture_output = true})
  t.is(r.stdout, "a\r\nb", "without text, bytes as they came")
  r = run({"printf", "x\r\n"}, {capture_output = true, universal_newlines = true})
  t.is(r.stdout, "x\n", "universal_newlines = true is text mode")
  r = run({"printf", "x\r\n"}, {capture_output = true, encoding = "utf-8"})
  t.is(r.stdout, "x\n", "encoding = 'utf-8' is text mode")
  r = run({"printf", "caf\195\169\r\n"}, {capture_output = true, text = true})
  t.is(r.stdout, "caf\195\169\n", "UTF-8 bytes pass unchanged")
  r = run({"sh", "-c", "printf 'e\\r\\n' >&2"}, {capture_output = true, text = true})
  t.is(r.stderr, "e\n", "stderr too")
  local p = Popen({"cat"}, {stdin = PIPE, stdout = PIPE, text = true})
  t.is(p.text_mode, true, "Popen.text_mode")
  t.is(p:communicate("x\r\ny\n"), "x\ny\n", "communicate in text mode")
end

-- Popen: pid, returncode, files, <close> ----------------------------------------------
do
  local p = Popen({"sh", "-c", "read x; echo got $x; echo second"}, {stdin = PIPE, stdout = PIPE})
  t.ok(math.type(p.pid) == "integer" and p.pid > 0, "pid is a positive integer")
  t.is(p.returncode, nil, "returncode nil while running")
  t.is(io.type(p.stdin), "file", "stdin is a Lua file")
  t.is(io.type(p.stdout), "file", "stdout is a Lua file")
  t.is(p.stderr, nil, "stderr nil when not piped")
  t.ok(p.stdin:write("hello\n"), "stdin:write")
  p.stdin:flush()
  t.is(p.stdout:readline(), "got hello\n", "stdout:readline() keeps the newline, as Python")
  t.is(p.stdout:read("l"), "second", "stdout:read('l')")
  t.is(p.stdout:readline(), nil, "readline() at the end: nil")
  p.stdin:close()
  t.is(p:wait(), 0, "wait() returns the returncode")
  t.is(p.returncode, 0, "... and sets it")
  t.is(p:poll(), 0, "poll() after the end: the returncode")
  t.like(tostring(p), "^<Popen: returncode: 0 args: %['sh', '%-c'", "tostring(Popen) as Python's repr")

  p = Popen({"printf", "1\n2\n3\n"}, {stdout = PIPE})
  local got = {}
  for line in p.stdout:lines() do got[#got + 1] = line end
  p:wait()
  t.is(table.concat(got, ","), "1,2,3", "for line in p.stdout:lines()")

  local pid
  do
    local q <close> = Popen({"sh", "-c", "cat; exit 4"}, {stdin = PIPE, stdout = PIPE})
    pid = q
    q.stdin:write("data\n")
  end
  t.is(pid.returncode, 4, "<close> closes stdin (cat ends) and waits, as Python's with")
  t.is(io.type(pid.stdout), "closed file", "... and closes stdout")

  local ok, err = pcall(function()
    local q <close> = Popen({"sleep", "0.2"})
    pid = q
    error("boom")
  end)
  t.ok(not ok and tostring(err):find("boom"), "an error inside the scope goes on")
  t.is(pid.returncode, 0, "... after <close> waited for the child")

  p = Popen({"sh", "-c", "exit 3"}, {bufsize = 0})
  t.is(p:wait(), 3, "bufsize = 0 is accepted")
  p = Popen({"cat"}, {stdin = PIPE, stdout = PIPE, bufsize = 1})
  p.stdin:write("line buffered\n")
  t.is(p.stdout:read("l"), "line buffered", "bufsize = 1: a line goes out without flush")
  p.stdin:close()
  p:wait()

  p = Popen({"sh", "-c", "echo $0"}, {executable = "/bin/sh", stdout = PIPE})
  t.is(p:communicate(), "sh\n", "executable runs that file, args[1] stays argv[0]")
  p = Popen({"sleep", "0.1"}, {start_new_session = true})
  t.is(p:wait(), 0, "start_new_session = true")
  local r = run({"sh", "-c", "ps -o sid= -p $$"}, {start_new_session = true, capture_output = true})
  t.ok(tonumber(r.stdout) ~= nil, "ps prints the child's session id")
  local parent_sid = run({"sh", "-c", "ps -o sid= -p " .. os.getpid()}, {capture_output = true}).stdout
  t.isnt(tonumber(r.stdout), tonumber(parent_sid), "... a new session, not ours")
end

-- call, check_call, check_output, getoutput, getstatusoutput ------------------------
do
  t.is(subprocess.call({"sh", "-c", "exit 6"}), 6, "call returns the returncode")
  t.is(subprocess.call("exit 2", {shell = true}), 2, "call with the shell")
  t.is(subprocess.check_call({"true"}), 0, "check_call returns 0")
  local e = t.raises(function() subprocess.check_call({"false"}) end, subprocess.CalledProcessError,
                     "check_call on failure: CalledProcessError")
  t.is(e and e.returncode, 1, "... returncode 1")
  t.is(subprocess.check_output({"echo", "hi"}), "hi\n", "check_output returns stdout")
  t.is(subprocess.check_output({"cat"}, {input = "in"}), "in", "check_output with input")
  t.is(subprocess.check_output("echo a; echo b >&2", {shell = true, stderr = STDOUT}), "a\nb\n",
       "check_output with stderr = STDOUT")
  e = t.raises(function() subprocess.check_output({"sh", "-c", "echo so-far; exit 9"}) end,
               subprocess.CalledProcessError, "check_output on failure: CalledProcessError")
  t.is(e and e.output, "so-far\n", "... with the output")
  t.raises(function() subprocess.check_output({"true"}, {stdout = PIPE}) end, ValueError,
           "check_output with stdout: ValueError")
  local code, out = subprocess.getstatusoutput("echo out; echo err >&2; exit 4")
  t.is(code, 4, "getstatusoutput: the exit code")
  t.is(out, "out\nerr", "... and the output with stderr, last newline removed")
  code, out = subprocess.getstatusoutput("printf 'x\\n\\n'")
  t.is(out, "x\n", "... only one newline removed")
  t.is(subprocess.getoutput("echo hello"), "hello", "getoutput")
end

-- Argument errors -----------------------------------------------------------------
do
  t.raises(function() run({"true"}, {nope = 1}) end, "unexpected keyword argument 'nope'",
           "an unknown option: TypeError naming it")
  t.raises(function() run({"true"}, {nope = 1}) end, TypeError, "... a TypeError")
  t.raises(function() Popen({"true"}, {input = "x"}) end, TypeError, "input is not Popen's")
  t.raises(function() run({"cat"}, {input = "x", stdin = PIPE}) end, ValueError,
           "input with stdin: ValueError")
  t.raises(function() run({"true"}, {capture_output = true, stdout = PIPE}) end, ValueError,
           "capture_output with stdout: ValueError")
  t.raises(function() run(42) end, TypeError, "args that is a number: TypeError")
  t.raises(function() run({"echo", 1}) end, TypeError, "an argument that is not a string: TypeError")
  t.raises(function() run({}) end, ValueError, "empty args: ValueError")
  t.raises(function() run({"echo", "a\0b"}) end, ValueError, "an embedded NUL: ValueError")
  t.raises(function() run({"true"}, 5) end, TypeError, "options that are not a table: TypeError")
  t.raises(function() run({"true"}, {timeout = "x"}) end, TypeError, "a timeout that is not a number")
  t.raises(function() run({"true"}, {cwd = 5}) end, TypeError, "a cwd that is not a string")
  t.raises(function() run({"true"}, {pass_fds = {-1}}) end, ValueError, "pass_fds = {-1}: ValueError")
  local p = Popen({"cat"}, {stdin = PIPE, stdout = PIPE})
  t.raises(function() p:communicate(5) end, TypeError, "communicate(5): TypeError")
  p:communicate("a")
  t.raises(function() p:communicate("more") end, ValueError,
           "input after communication started: ValueError")
end

t.done_testing()
