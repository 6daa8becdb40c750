--[[
subprocess: Python's subprocess module, on the C module _subprocess
(posix_spawn, waits and the pipe exchange, all without the GIL while they
block).

    local subprocess = require "subprocess"
    local r = subprocess.run({"ls", "-l"}, {capture_output = true, text = true})
    print(r.stdout, r.returncode)
    local p = subprocess.Popen({"sort"}, {stdin = subprocess.PIPE, stdout = subprocess.PIPE})
    local out, err = p:communicate("b\na\n")

Where Lua and Python differ:
  * The command comes first, Python's keyword arguments second, as one
    options table: run(args, {capture_output = true, timeout = 2}).
    `args` is an array of strings, or a string: the program alone, or with
    shell = true the command line given to /bin/sh -c.
  * Lua strings are bytes, so output is a string with or without `text`;
    `text = true` (or `universal_newlines`, `encoding`, `errors`) turns
    "\r\n" and a lone "\r" into "\n" in what communicate and run return,
    as Python's universal newlines do. The bytes are not decoded: any
    encoding is accepted and changes nothing else. TimeoutExpired's partial
    output is left as read, as in Python.
  * Popen's stdin, stdout and stderr are Lua file handles: read, write,
    lines, close, flush work as for any Lua file (f:read() reads a line, as
    in Lua, and f:read("a") everything). Every Lua file also has Python's
    readline: f:readline() is f:read("L") (nil at the end, where Python
    gives "", so `if not line then break end` works).
    They take part in `lines`, `<close>`, and may be passed as another
    child's stdin, stdout or stderr.
  * Writing to the stdin of a child that has ended fails with EPIPE
    (nil, "Broken pipe", 32, as a Lua write fails) instead of raising
    BrokenPipeError; gilua does not ignore SIGPIPE, but our pipe writes
    cannot raise it.
  * Signals are numbers or names: p:send_signal("SIGINT"), p:send_signal(2).
  * A Popen is a to-be-closed variable: `local p <close> = subprocess.Popen(...)`
    closes its pipes and waits at the end of the scope (Python's `with`).
  * Before the child starts, Lua's io.stdout is flushed if the child shares
    it, and so is a Lua file given as its stdout or stderr, so that what
    the parent printed first comes first.
  * The returned outputs of run/communicate are nil when not captured, as
    Python's None.
  * A name without "/" is looked up in the PATH of `env` when given (else
    /bin:/usr/bin), as Python does, else in ours. Every descriptor but 0, 1,
    2 and pass_fds is closed in the child (close_fds = false keeps the
    inheritable ones); SIGPIPE and SIGXFSZ get their default action back
    (restore_signals) and the child starts with no signal blocked.
  * Options that need code to run in the child, or ids gilua does not
    manage (preexec_fn, user, group, extra_groups, umask, process_group,
    pipesize), are not accepted: an unknown option is a TypeError.
]]

local _sp = require "_subprocess"
local Object = require "gilua.class"
local exc = require "gilua.exceptions"
local args = require "gilua.args"
local time = require "time"

local Exception, ValueError, TypeError = exc.Exception, exc.ValueError, exc.TypeError
local spawn, communicator, signame, signum = _sp.spawn, _sp.communicator,
  _sp.signame, _sp.signum
local monotonic = time.monotonic
local type, tostring, error, pcall, select, ipairs, pairs =
  type, tostring, error, pcall, select, ipairs, pairs
local setmetatable = setmetatable
local concat, unpack, mtype = table.concat, table.unpack, math.type
local iotype, getenv = io.type, os.getenv

local M = {}

local PIPE, STDOUT, DEVNULL = _sp.PIPE, _sp.STDOUT, _sp.DEVNULL
M.PIPE, M.STDOUT, M.DEVNULL = PIPE, STDOUT, DEVNULL

local SIGTERM, SIGKILL = signum("SIGTERM"), signum("SIGKILL")

-- Showing commands as Python does ---------------------------------------------

local ESC = { ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t", ["\\"] = "\\\\" }

-- Python's repr of a str.
local function repr(s)
  local q = "'"
  if s:find("'", 1, true) and not s:find('"', 1, true) then q = '"' end
  s = s:gsub("[%c\\" .. q .. "]", function(c)
    return ESC[c] or (c == q and "\\" .. c) or ("\\x%02x"):format(c:byte())
  end)
  return q .. s .. q
end

local function list_repr(t)
  local parts = {}
  for i = 1, #t do parts[i] = repr(tostring(t[i])) end
  return "[" .. concat(parts, ", ") .. "]"
end

-- The command as Python's messages show it: a string as is, a list as a list.
local function showcmd(cmd)
  if type(cmd) == "table" then return list_repr(cmd) end
  return tostring(cmd)
end

-- Exceptions --------------------------------------------------------------------

local SubprocessError = Exception:extend("subprocess.SubprocessError")
M.SubprocessError = SubprocessError

-- TimeoutExpired(cmd, timeout, output, stderr)
local TimeoutExpired = SubprocessError:extend("subprocess.TimeoutExpired")
M.TimeoutExpired = TimeoutExpired

function TimeoutExpired:init(cmd, timeout, output, stderr)
  SubprocessError.init(self, ("Command '%s' timed out after %s seconds")
                             :format(showcmd(cmd), tostring(timeout)))
  self.args = { cmd, timeout, n = 2 }
  self.cmd, self.timeout, self.output, self.stderr = cmd, timeout, output, stderr
end

-- CalledProcessError(returncode, cmd, output, stderr)
local CalledProcessError = SubprocessError:extend("subprocess.CalledProcessError")
M.CalledProcessError = CalledProcessError

function CalledProcessError:init(returncode, cmd, output, stderr)
  local msg
  if mtype(returncode) == "integer" and returncode < 0 then
    local name = signame(-returncode)
    if name then
      msg = ("Command '%s' died with <Signals.%s: %d>."):format(showcmd(cmd), name, -returncode)
    else
      msg = ("Command '%s' died with unknown signal %d."):format(showcmd(cmd), -returncode)
    end
  else
    msg = ("Command '%s' returned non-zero exit status %s."):format(showcmd(cmd), tostring(returncode))
  end
  SubprocessError.init(self, msg)
  self.args = { returncode, cmd, n = 2 }
  self.returncode, self.cmd, self.output, self.stderr = returncode, cmd, output, stderr
end

-- Python's alias: e.stdout is e.output.
local function get_stdout(self) return self.output end
local function set_stdout(self, v) self.output = v end
TimeoutExpired:property("stdout", get_stdout, set_stdout)
CalledProcessError:property("stdout", get_stdout, set_stdout)

-- CompletedProcess ------------------------------------------------------------------

local CompletedProcess = Object:extend("subprocess.CompletedProcess")
M.CompletedProcess = CompletedProcess

function CompletedProcess:init(args_, returncode, stdout, stderr)
  self.args, self.returncode, self.stdout, self.stderr = args_, returncode, stdout, stderr
end

function CompletedProcess:check_returncode()
  if self.returncode ~= 0 then
    error(CalledProcessError(self.returncode, self.args, self.stdout, self.stderr), 2)
  end
end

function CompletedProcess:__tostring()
  local a = self.args
  local parts = { "args=" .. (type(a) == "table" and list_repr(a) or repr(tostring(a))),
                  "returncode=" .. tostring(self.returncode) }
  if self.stdout ~= nil then parts[#parts + 1] = "stdout=" .. repr(self.stdout) end
  if self.stderr ~= nil then parts[#parts + 1] = "stderr=" .. repr(self.stderr) end
  return "CompletedProcess(" .. concat(parts, ", ") .. ")"
end

-- Options ---------------------------------------------------------------------------

local POPEN_NAMES = { "bufsize", "executable", "stdin", "stdout", "stderr",
  "close_fds", "shell", "cwd", "env", "universal_newlines", "text",
  "encoding", "errors", "pass_fds", "start_new_session", "restore_signals" }

local function spec(fname, ...)
  local s = { fname = fname }
  for i, name in ipairs(POPEN_NAMES) do s[i] = name end
  for i = 1, select("#", ...) do s[#s + 1] = select(i, ...) end
  return s
end

local POPEN_SPEC = spec("Popen")
local RUN_SPEC = spec("run", "input", "capture_output", "timeout", "check")
local CALL_SPEC = spec("call", "timeout")
local CHECK_CALL_SPEC = spec("check_call", "timeout")
local CHECK_OUTPUT_SPEC = spec("check_output", "input", "capture_output", "timeout", "check")
local COMM_SPEC = { "input", "timeout", fname = "Popen.communicate" }
local WAIT_SPEC = { "timeout", fname = "Popen.wait" }
local GETSTATUS_SPEC = { "encoding", "errors", fname = "getstatusoutput" }

-- The options table, checked (an unknown name is a TypeError); never changed.
local function options(spec_, opts)
  if opts == nil then return {} end
  if not args.is_options(opts) then
    error(TypeError(("%s(): the options must be a table of keyword arguments, not %s")
                    :format(spec_.fname, type(opts))), 3)
  end
  args.get(spec_, opts)
  return opts
end

-- The one rule for timeouts (gilua.args); a negative one has run out
-- already (TimeoutExpired), and messages show it as given.
local function check_timeout(t, fname)
  args.timeout(t, fname)
  return t
end

local function is_text(o)
  return (o.text or o.universal_newlines or o.encoding ~= nil or o.errors ~= nil) and true or false
end

-- Python's universal newlines, on what a text-mode child wrote.
local function newlines(s)
  if s ~= nil and s:find("\r", 1, true) then s = s:gsub("\r\n?", "\n") end
  return s
end

local function check_argv(cmd, fname)
  if type(cmd) == "string" then return { cmd } end
  if type(cmd) ~= "table" then
    error(TypeError(("%s(): args must be an array of strings or a string, not %s")
                    :format(fname, type(cmd))), 4)
  end
  local n = #cmd
  if n == 0 then error(ValueError(fname .. "(): args must not be empty"), 4) end
  for i = 1, n do
    if type(cmd[i]) ~= "string" then
      error(TypeError(("%s(): args[%d] must be a string, not %s")
                      :format(fname, i, type(cmd[i]))), 4)
    end
  end
  return cmd
end

local function env_list(env, fname)
  args.check(env, "table", fname, "env")
  local list = {}
  for k, v in pairs(env) do
    if type(k) ~= "string" then
      error(TypeError(fname .. "(): env names must be strings"), 4)
    end
    if type(v) == "number" then v = tostring(v)
    elseif type(v) ~= "string" then
      error(TypeError(("%s(): env[%q] must be a string, not %s"):format(fname, k, type(v))), 4)
    end
    if k == "" or k:find("=", 1, true) then
      error(ValueError(fname .. "(): illegal environment variable name"), 4)
    end
    list[#list + 1] = k .. "=" .. v
  end
  return list
end

-- So that what the parent wrote first comes first: the Lua file given as
-- the child's stdout or stderr, or io.stdout when the child shares it.
local function flush_shared(spec_, shared)
  local f = spec_
  if f == nil then f = shared end
  if iotype(f) == "file" then f:flush() end
end

-- Popen -------------------------------------------------------------------------------

local Popen = Object:extend("subprocess.Popen")
M.Popen = Popen

-- Starts the child; 'o' is the checked options table, the streams apart
-- (run and check_output choose them).
local function start(self, cmd, o, stdin, stdout, stderr, fname)
  local argv = check_argv(cmd, fname)
  local program = o.executable
  if o.shell then
    argv = { "/bin/sh", "-c", unpack(argv) }
    if program ~= nil then argv[1] = program end
  end
  if program == nil then program = argv[1] end
  args.check(program, "string", fname, "executable")
  local env, path = o.env, nil
  if env ~= nil then env = env_list(env, fname) end
  if not program:find("/", 1, true) then
    -- Python looks the program up in the PATH of the child's environment.
    if o.env ~= nil then path = o.env.PATH else path = getenv("PATH") end
    if path == nil then path = "/bin:/usr/bin" end
  end
  local bufsize = args.opt(o.bufsize, "integer", fname, "bufsize", -1)
  if o.cwd ~= nil then args.check(o.cwd, "string", fname, "cwd") end
  if o.pass_fds ~= nil then args.check(o.pass_fds, "table", fname, "pass_fds") end
  flush_shared(stdout, io.stdout)
  flush_shared(stderr, nil)
  local proc, fin, fout, ferr = spawn{
    program = program, argv = argv, env = env, path = path, cwd = o.cwd,
    stdin = stdin, stdout = stdout, stderr = stderr,
    close_fds = o.pass_fds ~= nil or o.close_fds ~= false,
    pass_fds = o.pass_fds, start_new_session = o.start_new_session and true or false,
    restore_signals = o.restore_signals ~= false, bufsize = bufsize,
  }
  self._proc = proc
  self.args = cmd
  self.pid = proc:pid()
  self.returncode = nil
  self.stdin, self.stdout, self.stderr = fin, fout, ferr
  self.text_mode = is_text(o)
  self.universal_newlines = self.text_mode
  return self
end

function Popen:init(cmd, opts)
  local o = options(POPEN_SPEC, opts)
  start(self, cmd, o, o.stdin, o.stdout, o.stderr, "Popen")
end

local function new(cmd, o, stdin, stdout, stderr, fname)
  return start(setmetatable({}, Popen), cmd, o, stdin, stdout, stderr, fname)
end

function Popen:__tostring()
  return ("<Popen: returncode: %s args: %s>"):format(tostring(self.returncode),
    type(self.args) == "table" and list_repr(self.args) or repr(tostring(self.args)))
end

function Popen:poll()
  if self.returncode == nil then self.returncode = self._proc:poll() end
  return self.returncode
end

function Popen:wait(...)
  local timeout = check_timeout(args.get(WAIT_SPEC, ...), "Popen.wait")
  if self.returncode == nil then
    local rc = self._proc:wait(timeout)
    if rc == nil then error(TimeoutExpired(self.args, timeout), 2) end
    self.returncode = rc
  end
  return self.returncode
end

local function left(deadline)
  if deadline == nil then return nil end
  local t = deadline - monotonic()
  return t > 0 and t or 0
end

--[[
communicate(input, timeout) -> stdout, stderr. The pipes are served
together (no deadlock whatever their sizes); after a TimeoutExpired
nothing is lost: a later call goes on and returns everything (Python's
`kill()` then `communicate()`).
]]
function Popen:communicate(...)
  local input, timeout = args.get(COMM_SPEC, ...)
  if input ~= nil and type(input) ~= "string" then
    error(TypeError("Popen.communicate(): input must be a string, not " .. type(input)), 2)
  end
  timeout = check_timeout(timeout, "Popen.communicate")
  if self._started and input ~= nil and input ~= "" then
    error(ValueError("Cannot send input after starting communication"), 2)
  end
  local deadline = timeout and monotonic() + timeout
  local res = self._result
  if res == nil then
    local comm = self._comm
    if comm == nil and not self._started then
      if self.stdin or self.stdout or self.stderr then
        comm = communicator(self.stdin, self.stdout, self.stderr,
                            input ~= nil and input ~= "")
        self._comm, self._input = comm, input
      end
      self._started = true
    end
    local out, err
    if comm ~= nil then
      local done
      done, out, err = comm:run(self._input, left(deadline))
      if not done then error(TimeoutExpired(self.args, timeout, out, err), 2) end
      self._comm, self._input = nil, nil
      if self.text_mode then out, err = newlines(out), newlines(err) end
    end
    res = { out, err }
    self._result = res
  end
  if self.returncode == nil then
    local rc = self._proc:wait(left(deadline))
    if rc == nil then error(TimeoutExpired(self.args, timeout, res[1], res[2]), 2) end
    self.returncode = rc
  end
  return res[1], res[2]
end

local function tosignal(sig)
  if mtype(sig) == "integer" then return sig end
  if type(sig) == "string" then
    local n = signum(sig)
    if n then return n end
    error(ValueError("Popen.send_signal(): unknown signal " .. sig), 3)
  end
  error(TypeError("Popen.send_signal(): a signal is a number or a name, not " .. type(sig)), 3)
end

-- Nothing is sent to a child already collected (its pid may be reused).
function Popen:send_signal(sig)
  sig = tosignal(sig)
  if self:poll() == nil then self._proc:send_signal(sig) end
end

function Popen:terminate() self:send_signal(SIGTERM) end

function Popen:kill() self:send_signal(SIGKILL) end

local function close_file(f)
  if iotype(f) == "file" then pcall(f.close, f) end
end

-- Python's __exit__ closes the files; an exchange cut short by an error
-- holds copies of their descriptors, closed here too.
local function close_streams(p)
  close_file(p.stdout)
  close_file(p.stderr)
  close_file(p.stdin)
  local comm = p._comm
  if comm ~= nil then
    p._comm, p._input = nil, nil
    comm:close()
  end
end

-- `local p <close> = Popen(...)`: Python's `with Popen(...) as p`.
function Popen:__close()
  close_streams(self)
  self:wait()
end

-- Functions ---------------------------------------------------------------------------

-- Kills the child after an error in the middle of run or call, collects
-- it, then passes the error on.
local function abort(p, e)
  pcall(p.kill, p)
  close_streams(p)
  p:wait()
  error(e, 0)
end

--[[
run(args, {input, capture_output, timeout, check, ... Popen's options})
-> CompletedProcess. On timeout the child is killed and collected, and
TimeoutExpired carries what was read so far.
]]
function M.run(cmd, opts)
  local o = options(RUN_SPEC, opts)
  local input, stdin, stdout, stderr = o.input, o.stdin, o.stdout, o.stderr
  if input ~= nil then
    if stdin ~= nil then
      error(ValueError("stdin and input arguments may not both be used."), 2)
    end
    stdin = PIPE
  end
  if o.capture_output then
    if stdout ~= nil or stderr ~= nil then
      error(ValueError("stdout and stderr arguments may not be used with capture_output."), 2)
    end
    stdout, stderr = PIPE, PIPE
  end
  local timeout = check_timeout(o.timeout, "run")
  local p = new(cmd, o, stdin, stdout, stderr, "run")
  local ok, out, err = pcall(p.communicate, p, input, timeout)
  if not ok then abort(p, out) end
  close_streams(p)
  if o.check and p.returncode ~= 0 then
    error(CalledProcessError(p.returncode, p.args, out, err), 2)
  end
  return CompletedProcess(p.args, p.returncode, out, err)
end

local function call(cmd, o, fname)
  local timeout = check_timeout(o.timeout, fname)
  local p = new(cmd, o, o.stdin, o.stdout, o.stderr, fname)
  local ok, rc = pcall(p.wait, p, timeout)
  if not ok then abort(p, rc) end
  close_streams(p)
  return rc
end

-- call(args, {timeout, ...}) -> returncode
function M.call(cmd, opts)
  return call(cmd, options(CALL_SPEC, opts), "call")
end

-- check_call(args, {...}) -> 0, or CalledProcessError
function M.check_call(cmd, opts)
  local rc = call(cmd, options(CHECK_CALL_SPEC, opts), "check_call")
  if rc ~= 0 then error(CalledProcessError(rc, cmd), 2) end
  return 0
end

-- check_output(args, {input, timeout, ...}) -> the output, or CalledProcessError
function M.check_output(cmd, opts)
  local o = options(CHECK_OUTPUT_SPEC, opts)
  if o.stdout ~= nil then
    error(ValueError("stdout argument not allowed, it will be overridden."), 2)
  end
  local merged = { stdout = PIPE, check = true }
  for k, v in pairs(o) do
    if k == "check" then
      error(TypeError("check_output(): got multiple values for keyword argument 'check'"), 2)
    end
    merged[k] = v
  end
  local ok, r = pcall(M.run, cmd, merged)
  if not ok then error(r, 2) end
  return r.stdout
end

-- getstatusoutput(cmd) -> exitcode, output (stdout and stderr, through the
-- shell, one trailing newline removed)
function M.getstatusoutput(cmd, ...)
  local encoding, errors = args.get(GETSTATUS_SPEC, ...)
  local ok, data = pcall(M.check_output, cmd, { shell = true, text = true,
    stderr = STDOUT, encoding = encoding, errors = errors })
  local code = 0
  if not ok then
    if not CalledProcessError:is(data) then error(data, 2) end
    code, data = data.returncode, data.output
  end
  if data:sub(-1) == "\n" then data = data:sub(1, -2) end
  return code, data
end

-- getoutput(cmd) -> the output of getstatusoutput
function M.getoutput(cmd, ...)
  return (select(2, M.getstatusoutput(cmd, ...)))
end

return M
