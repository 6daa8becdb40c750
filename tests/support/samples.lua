--[[
support/samples.lua: running the samples of samples/ and checking what
their course examples claim (not a test itself). `require "support.samples"`.

    local S = require "support.samples"
    S.check{
      { "threading/tache_longue.lua", timed = true, check = function(c, r)
          c.between(tonumber(r.out:match("Accélération: ([%d.]+)x")), 1.7, 2.3, "about 2x")
        end },
      { "threading/mon_thread.lua", alone = true, check = function(c, r)
          c.is(r.out, "49999995000000\n", "the sum") end },
    }

Each sample runs with the gilua under test; `check(c, r)` gets its result
r = {out, err, status, elapsed, args} and checks it with c.ok, c.is,
c.like, c.unlike, c.between (tap's forms). Every sample must exit with 0
and write nothing on stderr (unless `stderr` is a pattern its stderr must
match). Samples not marked `alone` run at the same time, one thread each
(they mostly wait, so their waits overlap); then those marked `alone` (the
CPU-bound ones, and those that measure CPU speed-ups) run one at a time.
A sample marked `timed` whose checks fail runs once more, alone, and the
checks of that second run are the ones reported: timings on a shared
machine get one retry, never a looser bound.
]]

local t = require "tap"
local subprocess = require "subprocess"
local threading = require "threading"
local util = require "support.util"

local M = {}

local here = debug.getinfo(1, "S").source:match("^@(.*)/support/[^/]*$") or "tests"
M.dir = here .. "/../samples/"

-- Whether the gilua under test is a sanitizer build (slow; TSan polls
-- drop requests with a count hook, so the GIL may change hands between any
-- two instructions there).
local build = os.getenv("GILUA_BUILD") or ""
M.tsan = build:match("tsan") ~= nil
M.sanitized = M.tsan or build:match("asan") ~= nil

-- Runs samples/<path> with its arguments; returns {out, err, status,
-- elapsed, args}.
function M.run(path, args, timeout)
  local cmd = { t.gilua(), M.dir .. path }
  for _, a in ipairs(args or {}) do cmd[#cmd + 1] = tostring(a) end
  local t0 = util.clock()
  local ok, r = pcall(subprocess.run, cmd, { capture_output = true, timeout = timeout or 120 })
  local elapsed = util.clock() - t0
  if not ok then
    return { out = "", err = tostring(r), status = -1, elapsed = elapsed, args = args }
  end
  return { out = r.stdout, err = r.stderr, status = r.returncode, elapsed = elapsed, args = args }
end

-- A checker with tap's forms that records instead of printing.
local function recorder()
  local rec, c = {}, {}
  local function add(pass, name, ...)
    rec[#rec + 1] = { pass = pass and true or false, name = name, diag = table.pack(...) }
    return pass and true or false
  end
  function c.ok(cond, name, ...) return add(cond, name, ...) end
  function c.is(got, want, name)
    return add(got == want, name, "         got: " .. t.show(got), "    expected: " .. t.show(want))
  end
  function c.like(s, pat, name)
    return add(type(s) == "string" and s:find(pat) ~= nil, name,
               "                  " .. t.show(s), "    doesn't match '" .. pat .. "'")
  end
  function c.unlike(s, pat, name)
    return add(type(s) == "string" and s:find(pat) == nil, name,
               "                  " .. t.show(s), "    matches '" .. pat .. "'")
  end
  function c.between(x, lo, hi, name)
    return add(type(x) == "number" and x >= lo and x <= hi, name,
               "         got: " .. t.show(x), ("    expected: between %s and %s"):format(lo, hi))
  end
  return c, rec
end

local function evaluate(spec, r)
  local c, rec = recorder()
  local name = spec[1]
  c.is(r.status, 0, name .. " runs and exits with 0")
  if spec.stderr then
    c.like(r.err, spec.stderr, name .. ": its stderr")
  else
    c.is(r.err, "", name .. ": nothing on stderr")
  end
  local ok, err = pcall(spec.check, c, r)
  if not ok then c.ok(false, name .. ": checking its output raised", tostring(err)) end
  local failed = false
  for _, x in ipairs(rec) do failed = failed or not x.pass end
  return rec, failed
end

local function report(spec, r, rec)
  for _, x in ipairs(rec) do
    if not x.pass then
      x.diag[x.diag.n + 1] = "  output of " .. spec[1] .. ":\n" .. r.out .. r.err
      x.diag.n = x.diag.n + 1
    end
    t.ok(x.pass, x.name, table.unpack(x.diag, 1, x.diag.n))
  end
end

-- Runs every sample of `specs` (see above) and reports its checks.
function M.check(specs)
  local results, threads = {}, {}
  for i, spec in ipairs(specs) do
    if not spec.alone then
      threads[#threads + 1] = util.go(function() results[i] = M.run(spec[1], spec.args, spec.timeout) end)
    end
  end
  for _, th in ipairs(threads) do th:join() end
  for i, spec in ipairs(specs) do
    local r = results[i] or M.run(spec[1], spec.args, spec.timeout)
    local rec, failed = evaluate(spec, r)
    if failed and spec.timed then
      t.note(("%s: figures off (%.2f s), running it once more:\n%s"):format(spec[1], r.elapsed, r.out))
      r = M.run(spec[1], spec.args, spec.timeout)
      rec = evaluate(spec, r)
    end
    if spec.show then t.note(r.out) end
    report(spec, r, rec)
  end
end

--[[ Helpers for the checks. ]]

-- The lines of a text, as an array.
function M.lines(s)
  local ls = {}
  for l in (s or ""):gmatch("([^\n]*)\n") do ls[#ls + 1] = l end
  return ls
end

-- Seconds since midnight of a "HH:MM:SS.mmm" log stamp (the course's
-- logging format).
function M.stamp(line)
  local h, m, s, ms = (line or ""):match("^(%d%d):(%d%d):(%d%d)%.(%d%d%d) ")
  if not h then return nil end
  return tonumber(h) * 3600 + tonumber(m) * 60 + tonumber(s) + tonumber(ms) / 1000
end

-- The stamp of the first line containing `text` (a plain string).
function M.stamp_of(out, text)
  for _, l in ipairs(M.lines(out)) do
    if l:find(text, 1, true) then return M.stamp(l) end
  end
  return nil
end

-- How many times a plain string occurs.
function M.count(s, text)
  local n, i = 0, 1
  while true do
    local a, b = (s or ""):find(text, i, true)
    if not a then return n end
    n, i = n + 1, b + 1
  end
end

return M
