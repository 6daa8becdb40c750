--[[
support/mpi.lua: running gilua under Open MPI in the tests.

    local mpit = require "support.mpi"
    local r = mpit.run(code, 3)        -- mpiexec --oversubscribe -n 3 gilua <code>
    mpit.report(t, r, 3 * 10)          -- one TAP check per CHECK line, and the count

`code` runs on every rank after a prelude that defines
`check(name, cond, detail)`: each rank prints one line per check, which
report() turns into TAP (a rank that dies leaves its checks missing, and
the count says so). As root (CI), Open MPI must be told that it may run.
]]

local tap = require "tap"

local M = {}

-- What Open MPI needs here: as root, its two consent variables; a
-- program run alone (no mpiexec) starts its workers on this machine.
local ENV = {}
if io.popen("id -u"):read("l") == "0" then
  ENV.OMPI_ALLOW_RUN_AS_ROOT = "1"
  ENV.OMPI_ALLOW_RUN_AS_ROOT_CONFIRM = "1"
end

-- Open MPI leaks at exit (in its plugins, unloaded by then: the leaks
-- cannot even be named to be suppressed), so under AddressSanitizer the
-- MPI processes check memory errors but not leaks.
if (os.getenv("GILUA_BUILD") or ""):match("asan") then
  ENV.ASAN_OPTIONS = ((os.getenv("ASAN_OPTIONS") or "") .. ":detect_leaks=0"):gsub("^:", "")
end

-- Under ThreadSanitizer, Open MPI (not built with it) is left out of the
-- reports; gilua's own code is still checked.
if (os.getenv("GILUA_BUILD") or ""):match("tsan") then
  local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/support"
  ENV.TSAN_OPTIONS = (os.getenv("TSAN_OPTIONS") or "") .. " suppressions=" .. here .. "/openmpi.tsan.supp"
end

function M.env()
  local parts = {}
  for k, v in pairs(ENV) do parts[#parts + 1] = k .. "=" .. tap.shquote(v) end
  table.sort(parts)
  return table.concat(parts, " ")
end

function M.mpiexec()
  local p = io.popen("command -v mpiexec 2>/dev/null")
  local path = p:read("l")
  p:close()
  return path
end

-- The first check of an MPI test file: Open MPI is there (make deps
-- installs it); without it the file fails here and stops.
function M.need_mpiexec(t)
  if not t.ok(M.mpiexec() ~= nil, "mpiexec is installed (make deps: openmpi-bin)") then
    t.done_testing()
  end
end

local PRELUDE = [[
local __mpi = require "mpi"
local __rank = __mpi.COMM_WORLD.rank
function check(name, cond, detail)
  io.stdout:write(("CHECK %d %s %s | %s\n"):format(__rank, cond and "ok" or "not", name,
    detail == nil and "" or tostring(detail):gsub("\n", " ")))
  io.stdout:flush()
end
]]

--[[ run(code, n, opts): the code on n ranks with mpiexec (n nil: gilua
alone, a singleton). opts.flags: gilua options; opts.args: the script's
arguments; opts.timeout (default 120 s); opts.mpiexec: extra mpiexec
options; opts.plain: no prelude. Returns {status, stdout, stderr, checks,
elapsed}. ]]
function M.run(code, n, opts)
  opts = opts or {}
  local script = tap.tmpname(".lua")
  local f = assert(io.open(script, "w"))
  f:write(opts.plain and "" or PRELUDE, code)
  f:close()
  local cmd = {}
  if n then
    cmd[#cmd + 1] = "mpiexec --oversubscribe -n " .. n
    if opts.mpiexec then cmd[#cmd + 1] = opts.mpiexec end
  end
  cmd[#cmd + 1] = tap.shquote(tap.gilua())
  for _, a in ipairs(opts.flags or {}) do cmd[#cmd + 1] = tap.shquote(a) end
  cmd[#cmd + 1] = tap.shquote(script)
  for _, a in ipairs(opts.args or {}) do cmd[#cmd + 1] = tap.shquote(a) end
  local outp, errp = tap.tmpname(), tap.tmpname()
  local line = ("%s timeout -s KILL %d %s </dev/null >%s 2>%s"):format(M.env(),
    opts.timeout or 120, table.concat(cmd, " "), tap.shquote(outp), tap.shquote(errp))
  local time = require "time"
  local t0 = time.monotonic()
  local ok, how, code_ = os.execute(line)
  local res = { elapsed = time.monotonic() - t0 }
  res.status = how == "exit" and code_ or (how == "signal" and 128 + code_) or (ok and 0 or -1)
  res.stdout, res.stderr = tap.slurp(outp) or "", tap.slurp(errp) or ""
  os.remove(outp); os.remove(errp); os.remove(script)
  res.checks = {}
  for rank, st, name, detail in res.stdout:gmatch("CHECK (%d+) (%a+) ([^\n]-) | ([^\n]*)") do
    res.checks[#res.checks + 1] = { rank = tonumber(rank), ok = st == "ok", name = name, detail = detail }
  end
  return res
end

-- One TAP check per CHECK line, then their count.
function M.report(t, res, expected, what)
  for _, c in ipairs(res.checks) do
    if not t.ok(c.ok, ("rank %d: %s"):format(c.rank, c.name)) and c.detail ~= "" then
      t.diag(c.detail)
    end
  end
  if not t.is(#res.checks, expected, (what or "every rank") .. " made all its checks") then
    t.diag("exit status " .. tostring(res.status))
    t.diag(res.stderr:sub(-3000))
  end
end

return M
