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
machine get one retry.

A parallel speed-up needs free cores, which other programs on a shared
machine often take (a busy machine may leave this process less than one
core, whatever it runs). A sample marked `cores` (one that measures a
speed-up of processes, or of threads that release the GIL) runs alone,
when the machine has two cores free: before it runs, M.free_cores() is
measured until it shows 1.8 or more (waiting at most 10 s, and 30 s in all
for a test file); measured again after, the smaller figure is r.cores.
Its checks ask for the speed-up M.want(r, bound): `bound` when two cores
were free, else what the cores it got allow (0.8 x r.cores); the check's
name shows the figure. Where threads must not compute at once (the GIL),
the samples also print the cores they kept busy, CPU time / elapsed time,
which no load on the machine can raise above one: the checks ask that
figure to stay <= 1.2 always, and the elapsed-time ratio (which, on a busy
machine, compares two moments of a changing load) only on free cores.
]]

local t = require "tap"
local subprocess = require "subprocess"
local multiprocessing = require "multiprocessing"
local time = require "time"
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

-- How many cores this process can get now: two child processes each
-- compute for `secs` of CPU time; on two free cores that takes `secs` of
-- wall time, on one free core twice as long.
local function spin(secs)
  local t0, x = time.process_time(), 0
  while time.process_time() - t0 < secs do
    for i = 1, 10000 do x = x + i end
  end
end

function M.free_cores(secs)
  secs = secs or 0.1
  local t0 = util.clock()
  local ps = {}
  for i = 1, 2 do
    ps[i] = multiprocessing.Process{target = spin, args = {secs}}
    ps[i]:start()
  end
  for _, p in ipairs(ps) do p:join() end
  return 2 * secs / (util.clock() - t0)
end

-- Waits for a moment when two cores are free (at most 10 s, and 30 s in
-- all for this process); returns the last figure measured.
local patience = 30
function M.wait_for_cores()
  local t0, cores = util.clock(), 0
  repeat
    cores = M.free_cores()
    if cores >= 1.8 then break end
    time.sleep(0.2)
  until util.clock() - t0 > math.min(10, patience)
  patience = math.max(0, patience - (util.clock() - t0))
  return cores
end

-- The speed-up to ask of parallel work measured with r.cores free: `bound`
-- on two free cores, else 0.8 of what the cores it got allow.
function M.want(r, bound)
  local cores = math.min(r.cores or 2, os.cpu_count() or 1)
  if cores >= 1.8 then return bound end
  return math.min(bound, 0.8 * cores)
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

-- Runs a sample marked `cores` when two are free (see above).
local function run_on_free_cores(spec)
  local before = M.wait_for_cores()
  local r = M.run(spec[1], spec.args, spec.timeout)
  r.cores = math.min(before, M.free_cores())
  return r
end

local function run_one(spec)
  if spec.cores then return run_on_free_cores(spec) end
  return M.run(spec[1], spec.args, spec.timeout)
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
    if not (spec.alone or spec.cores) then
      threads[#threads + 1] = util.go(function() results[i] = M.run(spec[1], spec.args, spec.timeout) end)
    end
  end
  for _, th in ipairs(threads) do th:join() end
  for i, spec in ipairs(specs) do
    local r = results[i] or run_one(spec)
    local rec, failed = evaluate(spec, r)
    if failed and (spec.timed or spec.cores) then
      t.note(("%s: figures off (%.2f s%s), running it once more:\n%s"):format(spec[1], r.elapsed,
             r.cores and (", %.2f cores free"):format(r.cores) or "", r.out))
      r = run_one(spec)
      rec = evaluate(spec, r)
    end
    if r.cores then t.note(("%s ran with %.2f cores free"):format(spec[1], r.cores)) end
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
