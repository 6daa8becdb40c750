#!/usr/bin/env gilua
-- Seeing the GIL: gil.stats() with finished threads, gil.summary(), tracing
-- to Chrome trace-event JSON (checked with python3's json module: valid,
-- consistent with the statistics, and never two threads running at once),
-- and the command-line options --gil-stats, --gil-trace, --gil-timeline.
local t = require "tap"
local threading = require "threading"
local time = require "time"
local gil = require "gil"
local util = require "support.util"

local function has_python()
  local ok = os.execute("python3 -c pass >/dev/null 2>&1")
  return ok == true or ok == 0
end
-- The suite needs python3 (tests/repl.lua too); its absence is a failure.
if not t.ok(has_python(), "python3 is available to check the JSON") then
  t.done_testing()
end

--[[ Runs a python3 check on a trace file; the script prints "key=value"
lines, returned as a table (values as numbers when they are). ]]
local function pycheck(script, path)
  local py = t.tmpname(".py")
  local f = assert(io.open(py, "w"))
  f:write(script)
  f:close()
  local p = assert(io.popen("python3 " .. t.shquote(py) .. " " .. t.shquote(path) .. " 2>&1"))
  local out = p:read("a")
  p:close()
  os.remove(py)
  local r = { _raw = out }
  for k, v in out:gmatch("([%w_]+)=([^\n]*)") do r[k] = tonumber(v) or v end
  return r
end

-- gil.stats(): finished threads stay, with their names -------------------------
do
  gil.reset_stats()
  local th = threading.Thread{ name = "short-lived", target = function() util.spin(1000) end }
  th:start(); th:join()
  local st = gil.stats()
  local rec
  for _, x in ipairs(st.threads) do if x.name == "short-lived" then rec = x end end
  t.ok(rec ~= nil, "a finished thread is still in gil.stats().threads")
  t.is(rec and rec.alive, false, "... with alive = false")
  t.ok(rec and rec.acquisitions >= 1, "... and its figures")
  t.is(st.threads[1].name, "MainThread", "the oldest thread comes first")
  t.is(st.threads[1].alive, true, "MainThread is alive")
  t.ok(type(st.elapsed) == "number" and st.elapsed > 0, "stats.elapsed")
  t.like(gil.summary(), "GIL statistics", "gil.summary() is the readable table")
  t.like(gil.summary(), "short%-lived", "... naming the threads")
  gil.reset_stats()
  local names = {}
  for _, x in ipairs(gil.stats().threads) do names[#names + 1] = x.name end
  t.is(table.concat(names, ","), "MainThread", "reset_stats() forgets finished threads")
end

-- trace_start / trace_stop: the API ------------------------------------------------
do
  local path = t.tmpname(".json")
  t.is(gil.tracing(), false, "no trace at first")
  t.is(gil.trace_stop(), nil, "trace_stop without a trace returns nil")
  t.lives(function() gil.trace_start(path) end, "trace_start(path)")
  t.is(gil.tracing(), true, "gil.tracing() while it runs")
  t.raises(function() gil.trace_start(path) end, RuntimeError, "a second trace_start raises RuntimeError")
  t.is(gil.trace_stop(), path, "trace_stop() returns the path it wrote")
  t.is(gil.tracing(), false, "... and the trace is over")
  t.raises(function() gil.trace_start("/nonexistent/dir/x.json") end, FileNotFoundError,
           "an unwritable path raises at trace_start")
  t.raises(function() gil.timeline("/nonexistent/t.json", path .. ".html") end, FileNotFoundError,
           "gil.timeline on a missing trace raises")
  local notjson = t.tmpname(".txt")
  local f = assert(io.open(notjson, "w")); f:close()
  t.raises(function() gil.timeline(notjson, path .. ".html") end, ValueError,
           "gil.timeline on an empty file raises ValueError")
  os.remove(notjson)
  os.remove(path)
end

-- A traced run, checked against the statistics ----------------------------------------
local CHECK = [=[
import json, sys
d = json.load(open(sys.argv[1]))
ev = d["traceEvents"]
other = d["otherData"]
names = {e["tid"]: e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
byname = {v: k for k, v in names.items()}
print("threads=" + ",".join(sorted(names.values())))
bad_fields = [e for e in ev if e["ph"] != "M" and not all(k in e for k in ("ts", "pid", "tid", "name", "cat"))]
print("bad_fields=%d" % len(bad_fields))
print("unnamed=%d" % len([e for e in ev if e["ph"] != "M" and e["tid"] not in names]))
t0, t1 = other["start_us"], other["end_us"]
outside = [e for e in ev if e["ph"] != "M" and not (t0 - 1 <= e["ts"] <= t1 + 1)]
print("outside=%d" % len(outside))
spans = {}
for e in ev:
    if e["ph"] == "X":
        spans.setdefault(e["tid"], []).append((e["ts"], e["ts"] + e["dur"], e["name"]))
# a thread's spans follow each other without overlapping
overlap_self = 0
for tid, s in spans.items():
    s.sort()
    for a, b in zip(s, s[1:]):
        if b[0] < a[1] - 0.01: overlap_self += 1
print("overlap_self=%d" % overlap_self)
# the GIL: no two threads ever run at the same time
run = sorted((a, b, tid) for tid, s in spans.items() for (a, b, n) in s if n == "running")
both = sum(1 for x, y in zip(run, run[1:]) if y[0] < x[1] - 0.01)
print("running_overlaps=%d" % both)
print("running_spans=%d" % len(run))
def count(name, who):
    tid = byname.get(who)
    return len([e for e in ev if e["ph"] == "i" and e["name"] == name and e["tid"] == tid])
for who in ("cpu-a", "cpu-b", "sleeper", "MainThread"):
    key = who.replace("-", "_")
    print("%s_acquire=%d" % (key, count("acquire", who)))
    print("%s_forced=%d" % (key, count("forced release", who)))
    print("%s_blocking=%d" % (key, count("blocking-call release", who)))
    print("%s_drops=%d" % (key, count("drop request", who)))
    print("%s_exit=%d" % (key, count("release", who)))
    st = [n for (a, b, n) in spans.get(byname.get(who), [])]
    print("%s_states=%s" % (key, ",".join(sorted(set(st)))))
drops = [e for e in ev if e["name"] == "drop request"]
print("drops_with_holder=%d" % len([e for e in drops if e["args"]["holder_name"] in names.values()]))
print("drops=%d" % len(drops))
print("interval_ms=%g" % other["switch_interval_ms"])
]=]

do
  local path = t.tmpname(".json")
  local N = util.calibrate(0.15)
  local parked = threading.Event()
  -- alive across the whole trace, blocked: it must still get a lane
  local idle = threading.Thread{ name = "idle", daemon = true, target = function() parked:wait() end }
  idle:start()
  time.sleep(0.02)
  gil.trace_start(path)
  gil.reset_stats()
  local a = threading.Thread{ name = "cpu-a", target = util.spin, args = {N} }
  local b = threading.Thread{ name = "cpu-b", target = util.spin, args = {N} }
  local s = threading.Thread{ name = "sleeper", target = function()
    for _ = 1, 10 do time.sleep(0.005) end
  end }
  a:start(); b:start(); s:start()
  a:join(); b:join(); s:join()
  local st = gil.stats()
  t.is(gil.trace_stop(), path, "a traced run")
  parked:set(); idle:join()

  local r = pycheck(CHECK, path)
  if not t.is(r.bad_fields, 0, "the trace is valid JSON, every event with ts, pid, tid, name, cat") then
    t.diag(r._raw)
  end
  t.is(r.threads, "MainThread,cpu-a,cpu-b,idle,sleeper", "one thread_name per thread, those that left included")
  t.is(r.unnamed, 0, "every event belongs to a named thread")
  t.is(r.outside, 0, "every timestamp lies between the trace's start and end")
  t.is(r.overlap_self, 0, "a thread's state spans follow each other")
  t.is(r.running_overlaps, 0, "no two threads ever hold the GIL at the same time")
  t.ok((r.running_spans or 0) > 10, "running spans: " .. tostring(r.running_spans))
  local rec = {}
  for _, x in ipairs(st.threads) do rec[x.name] = x end
  for _, who in ipairs{"cpu-a", "cpu-b", "sleeper"} do
    local key = who:gsub("%-", "_")
    t.is(r[key .. "_acquire"], rec[who].acquisitions,
         who .. ": one acquire event per acquisition in gil.stats()")
    t.is(r[key .. "_forced"], rec[who].drop_requests_received,
         who .. ": one forced release per drop request received")
    t.ok(r[key .. "_drops"] >= rec[who].drop_requests_made,
         who .. ": a drop request event for every request made")
    t.is(r[key .. "_exit"], 1, who .. ": its last event is its release on leaving")
  end
  t.ok(r.cpu_a_forced + r.cpu_b_forced >= 5, "CPU-bound threads were forced to let go ("
       .. (r.cpu_a_forced + r.cpu_b_forced) .. " times)")
  t.ok(r.sleeper_blocking >= 10, "the sleeper's blocking-call releases are there ("
       .. tostring(r.sleeper_blocking) .. ")")
  t.is(r.cpu_a_states, "running,waiting for GIL", "a CPU-bound thread runs and waits")
  t.like(r.sleeper_states, "blocked", "the sleeper also blocks")
  t.is(r.drops_with_holder, r.drops, "every drop request names the holder it was meant for")
  t.is(r.interval_ms, 5, "the switch interval is in otherData")
  os.remove(path)
end

-- Names: a thread renamed during the trace (the name the GIL knows it by,
-- _thread.set_name) shows its last name; a name that would close the
-- <script> element of the page is escaped.
do
  local path = t.tmpname(".json")
  gil.trace_start(path)
  local th = threading.Thread{ name = "before", target = function()
    require("_thread").set_name('after</script><b>"x"</b>')
    time.sleep(0.01)
  end }
  th:start(); th:join()
  gil.trace_stop()
  local text = t.slurp(path)
  t.ok(text:find("after\\u003c/script\\u003e\\u003cb\\u003e\\\"x\\\"", 1, true) ~= nil,
       "names are JSON-escaped, '<' and '>' included")
  t.ok(not text:find("before", 1, true), "a renamed thread appears under its last name")
  local r = pycheck("import json,sys; d=json.load(open(sys.argv[1])); "
                    .. "print('ok=%d' % any(e.get('args',{}).get('name')=='after</script><b>\"x\"</b>' for e in d['traceEvents']))", path)
  t.is(r.ok, 1, "... and decode back to the name")
  os.remove(path)
end

-- Command-line options -----------------------------------------------------------
local SCRIPT = [[
local threading = require "threading"
local function spin(n) local s = 0; for i = 1, n do s = s + i % 7 end; return s end
local a = threading.Thread{ name = "opt-a", target = spin, args = {3000000} }
local b = threading.Thread{ name = "opt-b", target = spin, args = {3000000} }
a:start(); b:start()
io.write("script ran\n")
]]

do
  local r = t.run(SCRIPT, { flags = {"--gil-stats"} })
  t.is(r.status, 0, "--gil-stats: exit status 0")
  t.like(r.stderr, "^GIL statistics: [%d.]+ s, policy new, switch interval 5%.0 ms\n", "--gil-stats prints a summary on stderr")
  t.like(r.stderr, "\n  MainThread ", "... a line for the main thread")
  t.like(r.stderr, "\n  opt%-a ", "... and for each thread, finished ones included")
  t.like(r.stderr, "%d+ switches %(", "... and the switches")
  t.like(r.stdout, "script ran", "the script ran")

  local json = t.tmpname(".json")
  r = t.run(SCRIPT, { flags = {"--gil-trace=" .. json} })
  t.is(r.status, 0, "--gil-trace=FILE: exit status 0")
  local c = pycheck(CHECK, json)
  t.like(c.threads or c._raw, "MainThread,opt%-a,opt%-b", "--gil-trace writes the JSON trace of the whole run")
  t.is(c.running_overlaps, 0, "... consistent")

  local html = t.tmpname(".html")
  r = t.run(SCRIPT, { flags = {"--gil-timeline", html} })
  t.is(r.status, 0, "--gil-timeline FILE: exit status 0")
  local page = t.slurp(html) or ""
  t.like(page, "^<!DOCTYPE html>", "--gil-timeline writes the page")
  t.ok(page:find('"opt-a"', 1, true) ~= nil, "... with the trace in it")

  os.remove(json); os.remove(html)
  r = t.run(SCRIPT, { flags = {"--gil-trace=" .. json, "--gil-timeline=" .. html, "--gil-stats"} })
  t.is(r.status, 0, "all three at once")
  t.like(t.slurp(json) or "", '^{"traceEvents":%[', "... the trace")
  t.like(t.slurp(html) or "", "^<!DOCTYPE html>", "... the page made from it")
  t.like(r.stderr, "GIL statistics", "... the summary")
  os.remove(json); os.remove(html)

  r = t.run(SCRIPT, { flags = {"--gil-trace=/nonexistent/dir/t.json"} })
  t.is(r.status, 1, "an unwritable --gil-trace file: exit status 1")
  t.like(r.stderr, "cannot write %-%-gil%-trace file '/nonexistent/dir/t.json'", "... saying why")
  t.unlike(r.stdout, "script ran", "... before any code ran")
  r = t.run(SCRIPT, { flags = {"--gil-timeline="} })
  t.is(r.status, 1, "an empty --gil-timeline name: exit status 1")
end

t.done_testing()
