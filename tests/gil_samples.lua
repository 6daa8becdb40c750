#!/usr/bin/env gilua
-- The samples of samples/gil/ show what they claim, in figures:
--   * cpu_vs_cpu: two CPU-bound threads take about the sequential time and
--     hand the GIL over about every switch interval (5 ms);
--   * convoy: an I/O-bound thread's median wake-up latency is under 1 ms
--     alone and about one switch interval (within 2x) beside a CPU-bound one;
--   * switch_interval: that latency and the switching rate follow
--     sys.setswitchinterval;
--   * policies: one row per GIL policy, each showing its rule (old loses
--     updates in the literal race and forces no switch, io-priority wakes
--     an I/O-bound thread far sooner than new);
--   * each can write a timeline page.
-- Timing on a shared machine: generous bounds, and a sample whose figures
-- miss them is run once more before the test fails.
local t = require "tap"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests"
local samples = here .. "/../samples/gil/"

-- Runs a sample; returns its "name=value" figures and its output.
local function run(name, ...)
  local args = {}
  for i, a in ipairs{...} do args[i] = t.shquote(a) end
  local cmd = ("%s %s %s 2>&1"):format(t.shquote(t.gilua()), t.shquote(samples .. name),
                                       table.concat(args, " "))
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local ok = p:close()
  local fig = {}
  for k, v in out:gmatch("([%w_]+)=([%d.]+)") do
    fig[k] = fig[k] or tonumber(v)
  end
  return fig, out, ok
end

-- Runs a sample until 'good(fig)' holds, twice at most.
local function run_until(good, name, ...)
  local fig, out, ok = run(name, ...)
  if ok and good(fig) then return fig, out, ok end
  t.note("figures off, running " .. name .. " once more:\n" .. out)
  return run(name, ...)
end

-- cpu_vs_cpu ----------------------------------------------------------------
do
  -- On an idle machine each slice is the switch interval plus a little;
  -- a busy one wakes the waiting thread late, which lengthens the slices:
  -- the bounds only ask that the GIL really goes back and forth.
  local function good(f)
    return f.ratio and f.ratio > 0.7 and f.ratio < 2.5 and f.slice_ms > 2.5 and f.slice_ms < 50
  end
  local f, out, ok = run_until(good, "cpu_vs_cpu.lua")
  t.ok(ok, "cpu_vs_cpu.lua runs")
  t.note(out)
  t.between(f.ratio, 0.7, 2.5, "two CPU-bound threads are no faster than the two calls in a row")
  t.between(f.slice_ms, 2.5, 50, "each thread keeps the GIL about a switch interval at a time ("
            .. tostring(f.slice_ms) .. " ms)")
  t.ok((f.switches_per_s or 0) > 20, "the GIL changes hands many times a second")
end

-- convoy ----------------------------------------------------------------------
do
  local function good(f)
    return f.alone_median_ms and f.alone_median_ms < 1 and
           f.cpu_median_ms > f.interval_ms / 2 and f.cpu_median_ms < 2 * f.interval_ms
  end
  local f, out, ok = run_until(good, "convoy.lua")
  t.ok(ok, "convoy.lua runs")
  t.note(out)
  t.ok(f.alone_median_ms < 1, ("alone, the I/O thread's median wake-up latency is under 1 ms (%.3f ms)")
       :format(f.alone_median_ms))
  t.between(f.cpu_median_ms, f.interval_ms / 2, 2 * f.interval_ms,
            "beside a CPU-bound thread it is about the switch interval (within 2x)")
end

-- switch_interval -----------------------------------------------------------------
do
  local function parse(out)
    local rows = {}
    for iv, rate, slice, lat in out:gmatch("interval_ms=([%d.]+) switches_per_s=([%d.]+) "
                                           .. "slice_ms=([%d.]+) latency_ms=([%d.]+)") do
      rows[#rows + 1] = { iv = tonumber(iv), rate = tonumber(rate),
                          slice = tonumber(slice), lat = tonumber(lat) }
    end
    return rows
  end
  local function good(rows)
    return #rows == 3 and rows[3].lat > 3 * rows[1].lat and rows[1].rate > 3 * rows[3].rate
           and rows[3].lat > 10 and rows[3].lat < 40
  end
  local _, out, ok = run("switch_interval.lua")
  local rows = parse(out)
  if not (ok and good(rows)) then
    t.note("figures off, running switch_interval.lua once more:\n" .. out)
    _, out, ok = run("switch_interval.lua")
    rows = parse(out)
  end
  t.ok(ok, "switch_interval.lua runs")
  t.note(out)
  t.is(#rows, 3, "three intervals measured")
  if #rows == 3 then
    t.ok(rows[3].lat > 3 * rows[1].lat, ("the I/O latency grows with the interval (%.2f ms at 1 ms, %.2f ms at 20 ms)")
         :format(rows[1].lat, rows[3].lat))
    t.between(rows[3].lat, 10, 40, "at 20 ms it is about 20 ms")
    t.ok(rows[1].rate > 3 * rows[3].rate, ("CPU-bound threads switch more often with a short interval (%.0f/s vs %.0f/s)")
         :format(rows[1].rate, rows[3].rate))
  end
end

-- policies.lua --quick: the GIL lab ------------------------------------------------------
do
  -- "policy: key=value ..." lines, one per policy
  local function parse(out)
    local rows = {}
    for pol, rest in out:gmatch("\n([%w_]+): (thr_seq=[^\n]*)") do
      local r = {}
      for k, v in rest:gmatch("([%w_]+)=([%d.]+)") do r[k] = tonumber(v) end
      rows[pol] = r
    end
    return rows
  end
  local polling = (os.getenv("GILUA_BUILD") or ""):match("tsan")
  local function good(rows)
    local new, old, iop, fifo = rows.new, rows.old, rows.io_priority, rows.fifo
    return new and old and iop and fifo and old.race < 400000 and old.forced == 0
           and iop.p50_ms < new.p50_ms / 3
  end
  local dir = t.tmpname("")
  os.remove(dir)
  os.execute("mkdir " .. t.shquote(dir))
  local _, out, ok = run("policies.lua", "--quick", "--timelines", dir)
  local rows = parse(out)
  if not (ok and good(rows)) then
    t.note("figures off, running policies.lua once more:\n" .. out)
    _, out, ok = run("policies.lua", "--quick", "--timelines", dir)
    rows = parse(out)
  end
  t.ok(ok, "policies.lua runs")
  t.note(out)
  local new, old, iop, fifo = rows.new, rows.old, rows.io_priority, rows.fifo
  t.ok(new and old and iop and fifo, "one row per policy")
  if new and old and iop and fifo then
    t.ok(old.race < 400000, "old: the literal race loses updates (" .. old.race .. " left)")
    if not polling then
      t.ok(new.race == 400000 and iop.race == 400000 and fifo.race == 400000,
           "new, io-priority, fifo: it loses none")
    end
    t.ok(new.race_lock + old.race_lock + iop.race_lock + fifo.race_lock == 1600000,
         "with a Lock, no policy loses any")
    t.is(old.forced, 0, "old: no forced switch")
    t.ok(iop.p50_ms < new.p50_ms / 3, ("io-priority: the I/O-bound thread wakes far sooner " ..
         "(median %.3f ms, new %.3f ms)"):format(iop.p50_ms, new.p50_ms))
  end
  for _, p in ipairs{"new", "old", "io-priority", "fifo", "all"} do
    local page = t.slurp(dir .. "/" .. p .. ".html") or ""
    t.like(page, '"gil_policy":"' .. (p == "all" and "new" or p:gsub("%-", "%%-")) .. '"',
           "--timelines writes " .. p .. ".html")
    os.remove(dir .. "/" .. p .. ".html")
  end
  os.remove(dir)
end

-- the timeline option of the samples -----------------------------------------------------
do
  local html = t.tmpname(".html")
  local _, out, ok = run("convoy.lua", html)
  t.ok(ok, "convoy.lua FILE.html runs")
  t.like(out, "timeline: ", "... says where the page is")
  local page = t.slurp(html) or ""
  t.like(page, "^<!DOCTYPE html>", "... and writes it")
  t.ok(page:find('"io"', 1, true) and page:find('"cpu"', 1, true), "... with the io and cpu threads")
  os.remove(html)
end

t.done_testing()
