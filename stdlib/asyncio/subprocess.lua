--[[
asyncio.subprocess: create_subprocess_exec / create_subprocess_shell and
the Process object, with piped standard streams as StreamReader /
StreamWriter.

    local p = asyncio.create_subprocess_exec("cat", {stdin = asyncio.subprocess.PIPE,
                                                     stdout = asyncio.subprocess.PIPE}):await()
    local out, err = p:communicate("hello"):await()
    print(p.returncode)

Options go in one table after the arguments (Python's keywords): stdin,
stdout, stderr (PIPE, DEVNULL, STDOUT for stderr, a file or a
descriptor), cwd, env. The child is started by the subprocess module's
C side (posix_spawn); the pipes are the loop's own, non-blocking on our
side. wait() waits in a helper thread (GIL released), as Python's
default child watcher does, so the loop is never blocked.
]]

local exc = require "gilua.exceptions"
local args = require "gilua.args"
local Object = require "gilua.class"
local aio = require "_asyncio"
local core = require "asyncio.core"
local combinators = require "asyncio.combinators"
local runners = require "asyncio.runners"
local streams = require "asyncio.streams"

local TypeError, ValueError = exc.TypeError, exc.ValueError
local async = core.async
local pcall, error, type, tostring, select, unpack = pcall, error, type, tostring, select, table.unpack

local M = {}
local sub = {}
M.subprocess = sub

sub.PIPE = -1
sub.STDOUT = -2
sub.DEVNULL = -3
local PIPE, STDOUT = sub.PIPE, sub.STDOUT

local _sp
local function spawner()
  if _sp == nil then _sp = require "_subprocess" end
  return _sp
end

local Process = Object:extend("asyncio.subprocess.Process")
sub.Process = Process

function Process:init(proc, loop)
  self._proc = proc
  self._loop = loop
  self.pid = proc:pid()
  self.returncode = nil
end

local wait = async(function(self)
  if self.returncode ~= nil then return self.returncode end
  local code = self._proc:poll()
  if code == nil then
    code = runners.to_thread(self._proc.wait, self._proc):await()
  end
  self.returncode = code
  return code
end, "Process.wait")

function Process:wait() return wait(self) end

function Process:send_signal(sig)
  if self.returncode == nil then self._proc:send_signal(sig) end
end
function Process:terminate() self:send_signal(spawner().signum("SIGTERM")) end
function Process:kill() self:send_signal(spawner().signum("SIGKILL")) end

local communicate = async(function(self, input)
  local tasks = {}
  if self.stdin then
    tasks[#tasks + 1] = async(function()
      if input ~= nil then
        self.stdin:write(input)
        local ok, e = pcall(function() self.stdin:drain():await() end)
        if not ok and not exc.BrokenPipeError:is(e) and not exc.ConnectionResetError:is(e) then
          error(e, 0)
        end
      end
      self.stdin:close()
    end, "communicate.stdin")()
  end
  local out_i, err_i
  if self.stdout then
    tasks[#tasks + 1] = self.stdout:read(-1)
    out_i = #tasks
  end
  if self.stderr then
    tasks[#tasks + 1] = self.stderr:read(-1)
    err_i = #tasks
  end
  local res = #tasks > 0 and combinators.gather(unpack(tasks)):await() or {}
  wait(self):await()
  return out_i and res[out_i] or nil, err_i and res[err_i] or nil
end, "Process.communicate")

function Process:communicate(input)
  if input ~= nil and type(input) ~= "string" then
    error(TypeError("communicate(): input must be a string"), 2)
  end
  return communicate(self, input)
end

function Process:__tostring()
  return ("<Process %d%s>"):format(self.pid,
    self.returncode and (" returncode=" .. self.returncode) or "")
end

local function env_list(env)
  local l = {}
  for k, v in pairs(env) do l[#l + 1] = tostring(k) .. "=" .. tostring(v) end
  return l
end

-- Starts the child with argv; opts as described above.
local function start(argv, opts)
  local loop = core.get_running_loop()
  local spec, ours, theirs = {}, {}, {}
  local names = { "stdin", "stdout", "stderr" }
  for i = 1, 3 do
    local v = opts[names[i]]
    if v == PIPE then
      local r, w = aio.pipe()
      if i == 1 then spec[i], ours[i], theirs[#theirs + 1] = r, w, r
      else spec[i], ours[i], theirs[#theirs + 1] = w, r, w end
      aio.set_nonblocking(ours[i])
    else
      spec[i] = v
    end
  end
  local program = opts.executable or argv[1]
  local path
  if not program:find("/", 1, true) then
    path = (opts.env and opts.env.PATH) or os.getenv("PATH") or "/bin:/usr/bin"
  end
  local ok, proc = pcall(spawner().spawn, {
    program = program, argv = argv, path = path,
    env = opts.env and env_list(opts.env) or nil, cwd = opts.cwd,
    stdin = spec[1], stdout = spec[2], stderr = spec[3],
  })
  for i = 1, #theirs do aio.close(theirs[i]) end
  if not ok then
    for i = 1, 3 do if ours[i] then aio.close(ours[i]) end end
    error(proc, 0)
  end
  local p = Process(proc, loop)
  local limit = opts.limit
  if ours[1] then
    local tr = streams._Transport(loop, ours[1])
    p.stdin = streams.StreamWriter(tr, nil)
  end
  for i = 2, 3 do
    if ours[i] then
      local r = streams.StreamReader{ limit = limit }
      r:_attach(streams._Transport(loop, ours[i]))
      if i == 2 then p.stdout = r else p.stderr = r end
    end
  end
  return p
end

local OPTS = { stdin = true, stdout = true, stderr = true, cwd = true, env = true,
               limit = true, executable = true }

local function split_opts(fname, ...)
  local n = select("#", ...)
  local opts = {}
  if n > 0 and args.is_options((select(n, ...))) then
    opts = (select(n, ...))
    n = n - 1
    for k in pairs(opts) do
      if not OPTS[k] then
        error(TypeError(fname .. "(): unexpected keyword argument '" .. tostring(k) .. "'"), 3)
      end
    end
  end
  local list = {}
  for i = 1, n do
    local a = select(i, ...)
    if type(a) ~= "string" and type(a) ~= "number" then
      error(TypeError(fname .. "(): arguments must be strings"), 3)
    end
    list[i] = tostring(a)
  end
  if n == 0 then error(ValueError(fname .. "(): a program is required"), 3) end
  if opts.stderr == STDOUT and opts.stdout == PIPE then
    -- both on one pipe: the child's stderr is its stdout
  end
  return list, opts
end

local exec = async(function(argv, opts) return start(argv, opts) end,
                   "create_subprocess_exec")

-- create_subprocess_exec(program, arg1, ..., {stdin =, stdout =, ...})
function M.create_subprocess_exec(...)
  local argv, opts = split_opts("create_subprocess_exec", ...)
  return exec(argv, opts)
end

-- create_subprocess_shell(cmd, {stdin =, stdout =, ...})
function M.create_subprocess_shell(cmd, opts)
  if type(cmd) ~= "string" then
    error(TypeError("create_subprocess_shell(): cmd must be a string"), 2)
  end
  local _, o = split_opts("create_subprocess_shell", cmd, opts or {})
  return exec({ "/bin/sh", "-c", cmd }, o)
end

return M
