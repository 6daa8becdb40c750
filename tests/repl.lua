#!/usr/bin/env gilua
--[[
repl.lua: the gilua command: options, exit statuses, and the interactive
loop driven through a pseudo-terminal (python3's pty module, since a REPL
on readline behaves differently on a pipe).
]]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local t = require "tap"

local gilua = t.gilua()
local q = t.shquote

-- Runs a shell command line; returns exit status, stdout, stderr.
local function sh(line)
  local outp, errp = t.tmpname(), t.tmpname()
  local _, how, code = os.execute("{ " .. line .. " ; } >" .. q(outp) ..
                                  " 2>" .. q(errp))
  local out, err = t.slurp(outp) or "", t.slurp(errp) or ""
  os.remove(outp)
  os.remove(errp)
  return (how == "signal") and 128 + code or code, out, err
end

local function write_file(text)
  local name = t.tmpname(".lua")
  local f = assert(io.open(name, "wb"))
  f:write(text)
  f:close()
  return name
end

---------------------------------------------------------------- options

do
  local st, out = sh(q(gilua) .. " -v </dev/null")
  t.is(st, 0, "-v exits with 0")
  t.like(out, "^gilua [%d.]+ %(Lua 5%.4", "-v prints gilua's and Lua's versions")

  st, out = sh(q(gilua) .. " -h </dev/null")
  t.is(st, 0, "-h exits with 0")
  t.like(out, "^usage: %S*gilua %[options%]", "-h prints the usage, named as invoked")
  t.like(out, "%-%-switch%-interval", "the usage lists --switch-interval")

  local err
  st, out, err = sh(q(gilua) .. " --no-such-option </dev/null")
  t.is(st, 1, "an unknown option exits with 1")
  t.like(err, "unrecognized option '%-%-no%-such%-option'.*usage:",
         "an unknown option prints the usage on stderr")

  st, out, err = sh(q(gilua) .. " -e </dev/null")
  t.is(st, 1, "-e without code exits with 1")

  st, out = sh(q(gilua) .. " -e 'print(6 * 7)' </dev/null")
  t.is(st, 0, "-e runs code and exits with 0")
  t.is(out, "42\n", "-e prints what the code prints")

  st, out, err = sh(q(gilua) .. " -e 'error(\"kaput\")' </dev/null")
  t.is(st, 1, "an error in -e exits with 1")
  t.like(err, "kaput.*stack traceback", "... with a traceback on stderr")

  st, out = sh(q(gilua) .. " -e 'os.exit(7)' </dev/null")
  t.is(st, 7, "os.exit(n) sets the exit status")

  st, out = sh(q(gilua) .. " -l t=time -e 'print(type(t.monotonic))' </dev/null")
  t.is(out, "function\n", "-l g=mod requires mod into global g")

  st, out = sh(q(gilua) .. " --switch-interval=0.0125 "
               .. "-e 'print(require(\"sys\").getswitchinterval())' </dev/null")
  t.is(out, "0.0125\n", "--switch-interval=S sets the switch interval")
  st, out, err = sh(q(gilua) .. " --switch-interval=fast -e 'print(1)' </dev/null")
  t.is(st, 1, "a bad --switch-interval exits with 1")
  t.ok(out == "" and err:find("switch%-interval"),
       "... before running anything, with a clear message", err)
end

---------------------------------------------------------------- scripts

do
  local script = write_file([[
print(__name__, arg[0] == ..., select("#", ...), ...)
print(arg[1], arg[2], arg[-1] ~= nil)
]])
  local st, out = sh(q(gilua) .. " " .. q(script) .. " a 'b c' </dev/null")
  os.remove(script)
  t.is(st, 0, "a script exits with 0")
  t.is(out, "__main__\tfalse\t2\ta\tb c\na\tb c\ttrue\n",
       "a script gets __name__, arg and ... as stock lua gives them")

  script = write_file("local x = nil\nprint('before')\nx.field = 1\n")
  local err
  st, out, err = sh(q(gilua) .. " " .. q(script) .. " </dev/null")
  os.remove(script)
  t.is(st, 1, "an uncaught error in a script exits with 1")
  t.like(err, "attempt to index.*stack traceback", "... after printing a traceback")

  st, out = sh("echo 'print(\"piped\", ...)' | " .. q(gilua) .. " - x y")
  t.is(out, "piped\tx\ty\n", "'gilua -' runs stdin with the arguments that follow")
  st, out = sh("echo 'print(\"from stdin\")' | " .. q(gilua))
  t.is(out, "from stdin\n", "without a terminal, gilua runs stdin as a script")

  st, out = sh(q(gilua) .. " -e 'y = 20' -i </dev/null")
  t.like(out, "^gilua [^\n]*\n> \n$",
         "-i after -e prints the version and enters the loop (prompt on a pipe)")
  st, out = sh("printf 'y + 1\\nfunction g()\\nreturn 5 end\\ng()\\n' | "
               .. q(gilua) .. " -e 'y = 20' -i")
  t.is(out:gsub("^gilua [^\n]*\n", ""),
       "> y + 1\n21\n> function g()\n>> return 5 end\n> g()\n5\n> \n",
       "on a pipe, the loop echoes each line after its prompt, prints "
       .. "expressions and joins incomplete lines")
end

------------------------------------------- how the loop shows values

-- What the loop prints for the expression 'expr' (one line), after the
-- code 'setup' has run (-e); stderr too.
local function shown(setup, expr)
  local input = write_file(expr .. "\n")
  local _, out, err = sh(q(gilua) .. " -e " .. q(setup or "") .. " -i <" .. q(input))
  os.remove(input)
  local echo = "> " .. expr .. "\n"
  local start = out:find(echo, 1, true)
  return start and out:sub(start + #echo):gsub("> \n$", "") or out, err
end

do
  t.is(shown(nil, '{1, 2, 3, name = "x"}'), '{1, 2, 3, name = "x"}\n',
       "a table shows its contents: the sequence, then the named fields")
  t.is(shown(nil, '{}'), "{}\n", "an empty table shows as {}")
  t.is(shown(nil, '{[10] = "a", b = true, [1.5] = 2, ["not a name"] = 3, ["end"] = 4, [false] = 0}'),
       '{[1.5] = 2, [10] = "a", b = true, ["end"] = 4, ["not a name"] = 3, [false] = 0}\n',
       "keys sorted (numbers, strings, booleans); keys that are not names in brackets")
  t.is(shown(nil, '{"tab\\there", "quote\\"s", "new\\nline", "\\0\\255", "caf\\u{e9}"}'),
       '{"tab\\there", "quote\\"s", "new\\nline", "\\000\\255", "caf\u{e9}"}\n',
       "strings inside a table are quoted and escaped (UTF-8 text kept)")
  t.is(shown(nil, '1, "two", nil, {3}'), "1\ttwo\tnil\t{3}\n",
       "values are tab-separated, strings and numbers as lua prints them")
  t.is(shown("t = {}", "t, setmetatable({}, {__tostring = function() return 'custom' end})"),
       "{}\tcustom\n", "a value with __tostring prints as tostring gives it")
  t.is(shown(nil, 'ValueError("bad value"), {ValueError("inside")}'),
       "ValueError: bad value\t{ValueError: inside}\n",
       "an exception object prints as 'ValueError: message'")
  t.like(shown(nil, 'require("threading").Thread'), "^class threading%.Thread\n$",
         "a class prints as its __tostring gives it")
  t.is(shown("t = {1, {2, {3}}} t[2][2].back = t t.me = t", "t"),
       "{1, {2, {3, back = <cycle>}}, me = <cycle>}\n",
       "a table inside itself shows as <cycle>")
  t.is(shown(nil, "{{{{{{{{1}}}}}}}}"), "{{{{{{...}}}}}}\n",
       "tables nested too deep show as {...}")
  local out = shown("t = {} for i = 1, 150 do t[i] = i end", "t")
  t.ok(out:find("^{\n  1, 2, 3, 4,") and out:find(" 100, %.%.%. %(50 more%),\n}\n$")
       and not out:find("101"), "a long table is cut after 100 items", out)
  for line in out:gmatch("[^\n]+") do
    if #line > 79 then t.ok(false, "lines fit in 79 columns: " .. line) end
  end
  out = shown("t = {} for i = 1, 20 do t['key' .. i] = {i, i * 2, name = 'item ' .. i} end", "t")
  t.like(out, '^{\n  key1 = {1, 2, name = "item 1"},\n  key10 = {10, 20, name = "item 10"},\n',
         "a table too wide for a line takes several, indented")
  out = shown("t = {} for i = 1, 30 do t[i] = {} for j = 1, 30 do t[i][j] = j end end", "t")
  t.like(out, "%.%.%. %(%d+ more%),\n}\n$", "the whole value is bounded too")
  local ok = #out < 20000
  t.ok(ok, "... to a few screens", #out)
  t.is(shown("print = function(...) io.write('my print: ', select('#', ...), ' ', ..., '\\n') end",
             "{1}"), "my print: 1 {1}\n",
       "a print the user redefines is used, given the table's text")
end

------------------------------------------------- the REPL on a terminal

-- Ctrl-D is only sent once the prompt is back: before that the terminal
-- is still in cooked mode, where the kernel turns Ctrl-D into an
-- end-of-file that readline's switch to raw mode then loses (a person
-- typing ahead would see the same).
-- Drives a command in a pseudo-terminal. Steps: "send:TEXT" (Python
-- escapes: \n, \x03 for Ctrl-C, \x04 for Ctrl-D), "expect:TEXT" (waits up
-- to 10 s for TEXT in what came out since the last send), "sleep:SECS",
-- "long:N" (sends x = "AAA...", N bytes of A, and a newline).
-- Prints the transcript, then "@@EXIT <status>".
local driver = [[
import os, pty, select, signal, sys, time
i = sys.argv.index('--')
prog, steps = sys.argv[1:i], sys.argv[i + 1:]
pid, fd = pty.fork()
if pid == 0:
    os.environ.update(TERM='dumb', INPUTRC='/dev/null', GILUA_HISTORY='')
    os.execvp(prog[0], prog)
out, mark = bytearray(), 0
def pump(secs, until=None):
    end = time.time() + secs
    while until is None or until not in out[mark:]:
        left = end - time.time()
        if left <= 0:
            return
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b''
            if not data:
                return
            out.extend(data)
def write(val):
    # reads the echo meanwhile: a pty's buffers are small
    while val:
        r, w, _ = select.select([fd], [fd], [], 10)
        if r:
            pump(0)
        if w:
            val = val[os.write(fd, val[:4096]):]
for step in steps:
    kind, _, val = step.partition(':')
    val = val.encode('latin-1').decode('unicode_escape').encode('latin-1')
    if kind == 'send':
        mark = len(out)
        write(val)
    elif kind == 'long':
        mark = len(out)
        write(b'x = "' + b'A' * int(val) + b'"\n')
    elif kind == 'expect':
        pump(10, val)
    else:
        pump(float(val))
status, end = None, time.time() + 10
while status is None:
    pump(0.1)
    p, st = os.waitpid(pid, os.WNOHANG)
    if p:
        status = os.waitstatus_to_exitcode(st)
    elif time.time() > end:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        status = 'timeout'
sys.stdout.write(out.decode('utf-8', 'replace'))
print('\n@@EXIT', status)
]]

local function have_python()
  return os.execute("python3 -c 'import pty' >/dev/null 2>&1")
end

-- Returns the transcript (without carriage returns) and the exit status.
local function session(steps)
  local py = t.tmpname(".py")
  local f = assert(io.open(py, "wb"))
  f:write(driver)
  f:close()
  local words = {}
  for i, s in ipairs(steps) do words[i] = q(s) end
  local _, out = sh("python3 " .. q(py) .. " " .. q(gilua) .. " -- "
                    .. table.concat(words, " ") .. " </dev/null")
  os.remove(py)
  out = out:gsub("\r", ""):gsub("\27%[%?2004[hl]", "")
  local status = out:match("@@EXIT (%S+)%s*$")
  return out, tonumber(status) or status
end

local PTY_TESTS = 21
if not have_python() then
  -- python3 is a build dependency (make deps, .ci/run): its absence fails.
  for _ = 1, PTY_TESTS do t.ok(false, "python3 with its pty module is needed to drive the REPL") end
else
  -- Markers are built by concatenation so that the echo of the input
  -- never matches what the code prints.
  local out, st = session {
    "expect:> ",
    "send:1 + 2, 'x' .. 'y'\n", "expect:xy",
    "send:function f(x)\n", "expect:>> ",
    "send:return x * 2\n", "expect:>> ",
    "send:end\n", "expect:> ",
    "send:f(21)\n", "expect:42",
    "send:10 +\n", "expect:>> ", "send:5\n", "expect:15",
    "expect:\n> ", "send:\x04",
  }
  t.like(out, "^gilua [%d.]+ %(Lua 5%.4[^\n]*\n> ", "the loop starts with a banner and '> '")
  t.like(out, "\n3\txy\n", "an expression prints its values, tab-separated")
  t.like(out, "\n>> return x %* 2\n>> end\n> f%(21%)\n42\n",
         "an incomplete statement continues on the next line with '>> '")
  t.like(out, "\n15\n", "an expression continues on the next line too")
  t.is(st, 0, "Ctrl-D on an empty line exits with 0")

  out = session {
    "expect:> ",
    "send:t = require'_thread'.start(function() for i = 1, 3 do "
      .. "require'time'.sleep(0.1) print('ti' .. 'ck', i) end end)\n",
    "expect:tick\t3",
    "send:print('af' .. 'ter')\n", "expect:after",
    "expect:\n> ", "send:\x04",
  }
  local tick = out:find("tick\t3", 1, true)
  local next_input = out:find("print('af'", 1, true)
  t.ok(tick and next_input and tick < next_input,
       "a background thread prints while the prompt waits for input", out)

  out, st = session {
    "expect:> ",
    "send:while true do end\n", "sleep:0.5",
    "send:\x03", "expect:> ",
    "send:print('al' .. 'ive')\n", "expect:alive",
    "expect:\n> ", "send:\x04",
  }
  t.ok(out:find("KeyboardInterrupt", 1, true) and out:find("\nalive\n", 1, true),
       "Ctrl-C stops running code with KeyboardInterrupt, back to the prompt", out)

  out = session {
    "expect:> ",
    "send:half a line", "sleep:0.2", "send:\x03", "expect:> ",
    "send:for i = 1, 2 do\n", "expect:>> ", "send:\x03", "expect:> ",
    "send:print('cl' .. 'ean')\n", "expect:clean",
    "expect:\n> ", "send:\x04",
  }
  t.ok(out:find("\nclean\n", 1, true) and not out:find("stdin:", 1, true),
       "Ctrl-C while typing drops the line, or the unfinished statement", out)

  out, st = session {
    "expect:> ",
    "send:threading = require'threading'\n", "expect:> ",
    "send:threading.Thread{target = function() require'time'.sleep(0.3) "
      .. "print('wo' .. 'rker done') end}:start()\n", "expect:> ",
    "expect:\n> ", "send:\x04",
  }
  t.ok(out:find("\nworker done\n", 1, true) ~= nil,
       "Ctrl-D waits for the non-daemon threads, as Python does", out)
  t.is(st, 0, "... and exits with 0")

  out = session {
    "expect:> ",
    "send:t = {_private = 'hid' .. 'den', public = 'vis' .. 'ible'}\n", "expect:> ",
    "send:t.\t", "sleep:0.3", "send:\n", "expect:visible",
    "expect:\n> ",
    "send:t._\t", "sleep:0.3", "send:\n", "expect:hidden",
    "expect:\n> ", "send:\x04",
  }
  t.ok(out:find("\n> t.public\nvisible\n", 1, true) and
       out:find("\n> t._private\nhidden\n", 1, true),
       "completion hides names that start with _ unless the prefix does", out)

  -- A Ctrl-D typed while code runs reaches the terminal in its usual mode,
  -- where readline's raw mode used to lose it: the loop went on.
  out, st = session {
    "expect:> ",
    "send:require'time'.sleep(1)\n", "sleep:0.3", "send:\x04", "sleep:2",
  }
  t.is(st, 0, "Ctrl-D typed while code runs ends the loop once it is done", out)

  -- Hostile input, one session: it must stay usable to the end.
  out, st = session {
    "expect:> ",
    "long:1048576", "expect:\n> ",
    "send:print(#x)\n", "expect:1048576", "expect:\n> ",
    "send:)))\n", "expect:\n> ",
    "send:(((\n", "expect:>> ", "send:]]\n", "expect:\n> ",
    "send:print(1 +\r2)\r", "expect:\n> ",
    "send:\x03", "expect:\n> ", "send:\x03\x03\x03", "sleep:0.3",
    "send:for i = 1, 2 do\n", "expect:>> ", "send:\x04", "expect:\n> ",
    "send:require'time'.sleep(30)\n", "sleep:0.5", "send:\x03", "expect:\n> ",
    "send:for i = 1, 1e8 do print(i) end\n", "sleep:0.5", "send:\x03",
    "expect:KeyboardInterrupt", "expect:\n> ",
    "send:while true do end\n", "sleep:0.3",
    "send:\x03", "send:\x03", "send:\x03", "send:\x03", "send:\x03", "sleep:0.5",
    "send:os.execute('stty -a')\n", "expect:\n> ",
    "send:print('st' .. 'ill here')\n", "expect:still here", "expect:\n> ",
    "send:\x04",
  }
  t.like(out, "\n1048576\n", "a line of 1 MB", out:sub(-300))
  t.like(out, "\nstdin:1: unexpected symbol near ')'\n", "unbalanced brackets: a syntax error")
  t.like(out, "\nstdin:2: unexpected symbol near ']'\n", "... and after a continuation line")
  t.like(out, "\n3\n", "a carriage return is a line end")
  t.like(out, "'end' expected near <eof>", "Ctrl-D in an unfinished statement says what is missing")
  t.like(out, "KeyboardInterrupt\nstack traceback:\n%s*%[C%]: in field 'sleep'",
         "Ctrl-C cuts a sleep short")
  t.like(out, "[^-]icanon .*[^-]echo ", "the terminal is in its usual mode while code runs after all that")
  t.like(out, "\nstill here\n", "the loop is still usable after all that")
  t.is(st, 0, "... and Ctrl-D ends it with 0")
end

-- Without a terminal a line is read as it is, NUL bytes included (they
-- used to cut it, and the rest of the input was taken for its end).
do
  local st, out = sh("printf 'print(#\"a\\0b\")\\nprint(\"x\" .. \"y\")\\n' | "
                     .. q(gilua) .. " -i")
  t.like(out, "\n3\n", "a NUL byte in a line read from a pipe is kept")
  t.like(out, "\nxy\n", "... and the next line is a line of its own")
  t.is(st, 0, "... exit status 0")
end

t.done_testing()
