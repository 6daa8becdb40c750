#!/usr/bin/env gilua
--[[
tap.lua: a small TAP producer for gilua's test suite (no dependencies).

    local t = require "tap"
    t.plan(3)                       -- or call t.done_testing() at the end
    t.ok(x > 0, "x is positive")
    t.is(got, expected, "name")     -- diagnostics show got and expected
    t.isnt(got, unexpected, "name")
    t.like(str, "^pattern", "name") -- a Lua pattern
    local err = t.raises(fn, ValueError, "name")  -- class (Class:is) ...
    t.raises(fn, "pattern", "name")               -- ... or a pattern on tostring(err)
    t.between(x, lo, hi, "name")    -- lo <= x <= hi (timing ratios)
    t.diag("message")               -- "# message" on stderr
    t.note("message")               -- "# message" on stdout
    t.done_testing()                -- plan if none yet; exit status 1 if any test failed

Run as a script (prove collects tests/*.lua), this file tests itself.

Every check returns true when it passed (raises returns the error it caught,
or nil). The process exits non-zero when a test failed or the plan was not
met; done_testing (or plan + the last test) must be reached for that.
]]

local M = {}

local out = io.stdout
local counter, failed = 0, 0
local planned = nil
local finished = false

--[[ Watchdog: a test that hangs (say, a wait that kept the GIL) must fail
rather than stall `make test`. A background shell kills this process after
$TAP_TIMEOUT seconds (default 120; 0 turns it off) with SIGKILL (prove
then reports "Wstat: 9"), unless done_testing stops it first. It checks that
the pid is still this script before killing it. Its children go first: a
child process of the test (a forked server, say) that outlived it would
hold prove's end of the pipe, and prove would wait for ever. ]]
local watchdog_pid
local function start_watchdog()
  if not (os.getpid and io.popen) then return end
  local secs = tonumber(os.getenv("TAP_TIMEOUT") or "") or 120
  if secs <= 0 then return end
  local pid = os.getpid()
  local script = arg and arg[0] or ""
  script = script:match("[^/]*$")
  local q = function(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
  local body = ("trap 'kill $s 2>/dev/null; exit 0' TERM; sleep %d & s=$!; wait $s; " ..
                "if grep -qF -- %s /proc/%d/cmdline 2>/dev/null; then " ..
                "pkill -9 -P %d; kill -9 %d; fi"):format(secs, q(script), pid, pid, pid)
  -- all of its output to /dev/null: prove (even with --merge) must not
  -- wait for the watchdog's end
  local p = io.popen("sh -c " .. q(body) .. " >/dev/null 2>&1 </dev/null & echo $!", "r")
  if p then
    watchdog_pid = tonumber(p:read("l"))
    p:close()
  end
end

local function stop_watchdog()
  if watchdog_pid then
    os.execute("kill " .. watchdog_pid .. " 2>/dev/null")
    watchdog_pid = nil
  end
end

start_watchdog()

local function emit(s)
  out:write(s, "\n")
  out:flush()
end

local function diag_lines(stream, s)
  s = tostring(s)
  for line in (s .. "\n"):gmatch("(.-)\n") do
    stream:write("# ", line, "\n")
  end
  stream:flush()
end

function M.diag(...)
  local parts = table.pack(...)
  for i = 1, parts.n do parts[i] = tostring(parts[i]) end
  diag_lines(io.stderr, table.concat(parts, " ", 1, parts.n))
end

function M.note(...)
  local parts = table.pack(...)
  for i = 1, parts.n do parts[i] = tostring(parts[i]) end
  diag_lines(out, table.concat(parts, " ", 1, parts.n))
end

function M.plan(n)
  assert(planned == nil, "plan() called twice")
  planned = n
  emit("1.." .. n)
end

-- Quote a value for diagnostics.
local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  local ok, s = pcall(tostring, v)
  if not ok then return "<" .. type(v) .. ">" end
  return s
end
M.show = show

local function where()
  -- The first caller outside this file.
  for level = 3, 12 do
    local info = debug.getinfo(level, "Sl")
    if info == nil then break end
    if not info.short_src:find("tap%.lua$") then
      return info.short_src .. ":" .. tostring(info.currentline)
    end
  end
  return "?"
end

function M.ok(cond, name, ...)
  counter = counter + 1
  local line = (cond and "ok " or "not ok ") .. counter
  if name ~= nil and name ~= "" then
    line = line .. " - " .. tostring(name):gsub("\n", " "):gsub("#", "\\#")
  end
  emit(line)
  if not cond then
    failed = failed + 1
    M.diag("  Failed test " .. (name and ("'" .. tostring(name) .. "'") or "")
           .. " at " .. where())
    local extra = table.pack(...)
    for i = 1, extra.n do M.diag(extra[i]) end
  end
  return cond and true or false
end

function M.is(got, expected, name)
  local pass = got == expected
  -- NaN is NaN for our purposes.
  if not pass and got ~= got and expected ~= expected then pass = true end
  return M.ok(pass, name,
              "         got: " .. show(got),
              "    expected: " .. show(expected))
end

function M.isnt(got, unexpected, name)
  return M.ok(got ~= unexpected, name,
              "         got: " .. show(got),
              "    expected anything else")
end

function M.like(str, pattern, name)
  local pass = type(str) == "string" and str:find(pattern) ~= nil
  return M.ok(pass, name,
              "                  " .. show(str),
              "    doesn't match '" .. pattern .. "'")
end

function M.unlike(str, pattern, name)
  local pass = type(str) == "string" and str:find(pattern) == nil
  return M.ok(pass, name,
              "                  " .. show(str),
              "    matches '" .. pattern .. "'")
end

--[[ raises(fn, expected, name): fn() must raise. `expected` is an exception
class (checked with expected:is(err)) or a Lua pattern that tostring(err)
must match (nil: any error). Returns the error when the check passed. ]]
function M.raises(fn, expected, name)
  local ok, err = pcall(fn)
  if ok then
    M.ok(false, name, "    no error was raised")
    return nil
  end
  local pass, want
  if expected == nil then
    pass, want = true, "any error"
  elseif type(expected) == "string" then
    pass = tostring(err):find(expected) ~= nil
    want = "an error matching '" .. expected .. "'"
  elseif type(expected) == "table" and type(expected.is) == "function" then
    pass = expected:is(err)
    want = "an instance of " .. tostring(expected)
  else
    error("raises(): expected must be a class or a pattern", 2)
  end
  M.ok(pass, name, "      raised: " .. show(err), "    expected: " .. want)
  if pass then return err end
  return nil
end

-- Checks that fn() does not raise; returns its results.
function M.lives(fn, name)
  local res = table.pack(pcall(fn))
  M.ok(res[1], name, not res[1] and ("    raised: " .. show(res[2])) or nil)
  return table.unpack(res, 2, res.n)
end

function M.between(x, lo, hi, name)
  local pass = type(x) == "number" and x >= lo and x <= hi
  return M.ok(pass, name,
              "         got: " .. show(x),
              "    expected: between " .. show(lo) .. " and " .. show(hi))
end

function M.failed() return failed end
function M.count() return counter end

local function finish()
  if finished then return end
  finished = true
  if failed > 0 then
    M.diag(("Looks like you failed %d test%s of %d."):format(
           failed, failed == 1 and "" or "s", counter))
  end
  if planned and planned ~= counter then
    M.diag(("Looks like you planned %d tests but ran %d."):format(planned, counter))
  end
  stop_watchdog()
  io.stdout:flush()
  io.stderr:flush()
  if failed > 0 or (planned and planned ~= counter) then os.exit(1) end
end

function M.done_testing(n)
  if planned == nil then
    planned = n or counter
    emit("1.." .. planned)
  end
  finish()
end

--[[ Running a child gilua. `gilua()` is the interpreter under test: $GILUA
when set (make test sets it), else "gilua" from PATH. ]]
function M.gilua()
  return os.getenv("GILUA") or "gilua"
end

local function shquote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shquote = shquote

function M.tmpname(suffix)
  local name = os.tmpname()
  if suffix then
    os.remove(name)
    name = name .. suffix
  end
  return name
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
M.slurp = slurp

--[[ run(code, opts): writes `code` to a temporary script and runs it with the
gilua under test. opts.args: extra command-line arguments (array);
opts.stdin: a shell command whose output is piped in; opts.pipe_to: a
shell command the child's stdout is piped into (its own stdout is then
res.stdout, and res.status is that command's); opts.flags: gilua options
before the script. Returns a table {status=, stdout=, stderr=,
elapsed=} (status: the exit code, or 128+signal). ]]
function M.run(code, opts)
  opts = opts or {}
  local script = M.tmpname(".lua")
  local f = assert(io.open(script, "wb"))
  f:write(code)
  f:close()
  local outp, errp = M.tmpname(), M.tmpname()
  local cmd = {}
  for _, a in ipairs(opts.flags or {}) do cmd[#cmd + 1] = shquote(a) end
  cmd[#cmd + 1] = shquote(script)
  for _, a in ipairs(opts.args or {}) do cmd[#cmd + 1] = shquote(a) end
  local line = shquote(M.gilua()) .. " " .. table.concat(cmd, " ")
  if opts.stdin then
    line = "(" .. opts.stdin .. ") | " .. line
  else
    line = line .. " </dev/null"
  end
  if opts.pipe_to then
    line = line .. " | (" .. opts.pipe_to .. ")"
  end
  line = "{ " .. line .. " ; } >" .. shquote(outp) .. " 2>" .. shquote(errp)
  -- os.execute through sh: the exit code of the pipeline is the child's.
  local clock = os.time
  local ok_time, time = pcall(require, "time")
  if ok_time then clock = time.monotonic end
  local t0 = clock()
  local ok, how, code_ = os.execute(line)
  local elapsed = clock() - t0
  local status
  if how == "exit" then status = code_
  elseif how == "signal" then status = 128 + code_
  else status = ok and 0 or -1 end
  local res = { status = status, stdout = slurp(outp) or "",
                stderr = slurp(errp) or "", elapsed = elapsed, script = script }
  os.remove(outp)
  os.remove(errp)
  os.remove(script)
  return res
end

-- Used as a module: that is all. ---------------------------------------------
local modname = ...
if type(modname) == "string" and modname:find("tap$") then return M end

-- Run as a script: the helper's self-test. ------------------------------------
local t = M
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

-- passing checks, in this process
t.ok(true, "ok(true)")
t.is(1 + 1, 2, "is(2, 2)")
t.is(0 / 0, 0 / 0, "is(NaN, NaN)")
t.isnt("a", "b", "isnt")
t.like("hello world", "^hel+o", "like")
t.unlike("hello", "bye", "unlike")
t.between(0.5, 0, 1, "between")
local e = t.raises(function() error(RuntimeError("r")) end, RuntimeError, "raises(class)")
t.ok(RuntimeError:is(e), "raises returns the error it caught")
t.raises(function() error("some text 42") end, "text %d+", "raises(pattern)")
t.raises(function() error({}) end, nil, "raises(nil): any error")
local a, b = t.lives(function() return 1, 2 end, "lives")
t.ok(a == 1 and b == 2, "lives returns fn's results")
t.is(t.count(), 13, "count() counts the checks so far")
t.is(t.failed(), 0, "no failure so far")

-- failing checks, in a child that uses this very file
local prelude = "package.path = " .. ("%q"):format(here .. "/?.lua;") .. " .. package.path\n" ..
                "local t = require 'tap'\n"
local r = t.run(prelude .. [[
t.ok(false, "plain failure")
t.is(1, 2, "is fails")
t.like("abc", "^x", "like fails")
t.raises(function() end, nil, "raises without an error")
t.raises(function() error(ValueError("v")) end, RuntimeError, "raises with another class")
t.between(5, 0, 1, "between fails")
t.ok(true, "a pass among them")
t.done_testing()
]])
t.is(r.status, 1, "a child with failing checks exits with status 1")
local n_not = select(2, r.stdout:gsub("\nnot ok ", "\n"))
if r.stdout:find("^not ok ") then n_not = n_not + 1 end
t.is(n_not, 6, "six 'not ok' lines")
t.like(r.stdout, "\nok 7 %- a pass among them\n", "the passing check is 'ok 7'")
t.like(r.stdout, "\n1%.%.7\n?$", "done_testing prints the plan 1..7 at the end")
t.like(r.stderr, "got: 1", "is() shows what it got")
t.like(r.stderr, "expected: 2", "is() shows what it expected")
t.like(r.stderr, "no error was raised", "raises() says no error was raised")
t.like(r.stderr, "ValueError: v", "raises() shows the wrong error")
t.like(r.stderr, "between 0 and 1", "between() shows its bounds")
t.like(r.stderr, "failed 6 tests of 7", "a summary of the failures")

r = t.run(prelude .. [[
t.plan(3)
t.ok(true, "one")
t.done_testing()
]])
t.is(r.status, 1, "a plan not met: exit status 1")
t.like(r.stdout, "^1%.%.3\n", "plan() prints the plan first")
t.like(r.stderr, "planned 3 tests but ran 1", "plan mismatch diagnostic")

r = t.run(prelude .. [[
t.ok(true, "a # hash in the name")
t.diag("to stderr")
t.note("to stdout")
t.done_testing()
]])
t.is(r.status, 0, "all passing: exit status 0")
t.like(r.stdout, "^ok 1 %- a \\# hash in the name\n", "a '#' in a name is escaped")
t.like(r.stdout, "\n# to stdout\n", "note() goes to stdout")
t.like(r.stderr, "# to stderr", "diag() goes to stderr")

t.done_testing()
