#!/usr/bin/env gilua
-- The GIL timeline page in a real browser: headless chromium loads it from
-- disk, its script runs without error and draws one SVG lane per thread,
-- with the three states and the drop requests. --dump-dom gives the
-- document as it is after the scripts ran; the page marks itself with
-- data-gil-timeline="ok" when its script finished, "error" when it failed.
-- chromium is a dependency of the suite (.ci/run, make deps): if it is
-- missing, the test fails.
local t = require "tap"
local gil = require "gil"

local function find_browser()
  for _, name in ipairs{ os.getenv("CHROMIUM") or "", "chromium", "chromium-browser",
                         "google-chrome" } do
    if name ~= "" then
      local p = io.popen("command -v " .. t.shquote(name) .. " 2>/dev/null")
      local path = p:read("l")
      p:close()
      if path and path ~= "" then return path end
    end
  end
end

local browser = find_browser()
if not t.ok(browser ~= nil, "chromium is installed (apt-get install chromium)") then
  t.done_testing()
end

-- The document after the page's scripts ran.
local function dump_dom(html)
  local profile = t.tmpname()
  os.remove(profile)
  local errf = t.tmpname()
  local cmd = ("timeout 120 %s --headless --no-sandbox --disable-gpu "
    .. "--disable-background-networking --disable-component-update --disable-sync "
    .. "--no-first-run --user-data-dir=%s --window-size=1400,900 --dump-dom %s 2>%s")
    :format(t.shquote(browser), t.shquote(profile), t.shquote("file://" .. html), t.shquote(errf))
  local p = assert(io.popen(cmd))
  local dom = p:read("a")
  p:close()
  local err = t.slurp(errf) or ""
  os.remove(errf)
  os.execute("rm -rf " .. t.shquote(profile))
  return dom, err
end

local function lanes(dom)
  local names = {}
  for tid, name in dom:gmatch('<g class="lane" data%-tid="(%d+)" data%-name="([^"]*)"') do
    names[#names + 1] = name
  end
  return names
end

local function check_page(html, expected, what)
  local dom, err = dump_dom(html)
  if not t.like(dom, '<html[^>]* data%-gil%-timeline="ok"', what .. ": the page's script ran to the end without error") then
    t.diag(dom:match('<p id="error">[^<]*') or "")
    t.diag(err:sub(-2000))
  end
  local got = lanes(dom)
  t.is(#got, #expected, what .. ": one lane per thread (" .. #expected .. ")")
  t.is(table.concat(got, ","), table.concat(expected, ","), what .. ": lanes named after the threads, oldest first")
  t.like(dom, 'data%-lanes="' .. #expected .. '"', what .. ": the page counted the same")
  return dom
end

-- The course's picture: a CPU-bound thread and an I/O-bound one.
local SCRIPT = [[
local threading = require "threading"
local time = require "time"
local stop = false
local cpu = threading.Thread{ name = "cpu", target = function()
  local n = 0
  while not stop do n = n + 1 end
end }
local io_thread = threading.Thread{ name = "io", target = function()
  for _ = 1, 20 do time.sleep(0.002) end
end }
cpu:start(); io_thread:start()
io_thread:join(); stop = true; cpu:join()
]]

do
  local html = t.tmpname(".html")
  local r = t.run(SCRIPT, { flags = {"--gil-timeline=" .. html} })
  t.is(r.status, 0, "gilua --gil-timeline=FILE.html runs the script")
  local dom = check_page(html, {"MainThread", "cpu", "io"}, "--gil-timeline")
  t.like(dom, '<svg[^>]* data%-threads="3"', "the timeline is an SVG")
  t.like(dom, 'fill="#2e9e44"', "running spans are drawn")
  t.like(dom, 'fill="#f08a3c"', "waiting-for-the-GIL spans are drawn")
  t.like(dom, 'fill="#b7d3ee"', "blocked spans are drawn")
  t.like(dom, '<path class="drop"', "drop requests are marked")
  t.like(dom, '<line class="forced"', "forced releases are marked")
  t.like(dom, "<td>io</td>", "the table of totals names the threads")
  os.remove(html)
end

-- From a JSON trace, with gil.timeline (what tools/gil_timeline.lua does),
-- threads that left before the end and a name with HTML in it.
do
  local json, html = t.tmpname(".json"), t.tmpname(".html")
  local threading = require "threading"
  local time = require "time"
  gil.trace_start(json)
  local ths = {}
  for i = 1, 3 do
    ths[i] = threading.Thread{ name = i == 3 and "<b>bold</b>" or ("w" .. i), target = function()
      local s = 0
      for k = 1, 200000 * i do s = s + k end
      time.sleep(0.005)
    end }
    ths[i]:start()
  end
  for i = 1, 3 do ths[i]:join() end
  gil.trace_stop()
  gil.timeline(json, html)
  local dom = check_page(html, {"MainThread", "w1", "w2", "&lt;b&gt;bold&lt;/b&gt;"}, "gil.timeline")
  t.unlike(dom, "<b>bold</b>", "a thread name is text, not markup")
  os.remove(json); os.remove(html)
end

-- The tool under tools/ does the same from the command line.
do
  local json, html = t.tmpname(".json"), t.tmpname(".html")
  local r = t.run("local x = 0; for i = 1, 1e5 do x = x + i end", { flags = {"--gil-trace=" .. json} })
  t.is(r.status, 0, "a trace for the tool")
  local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests"
  local tool = here .. "/../tools/gil_timeline.lua"
  local cmd = ("%s %s %s %s 2>&1"):format(t.shquote(t.gilua()), t.shquote(tool), t.shquote(json), t.shquote(html))
  local p = io.popen(cmd)
  local out = p:read("a")
  local ok = p:close()
  t.ok(ok, "tools/gil_timeline.lua TRACE PAGE succeeds")
  t.like(out, "wrote " .. html:gsub("%p", "%%%0"), "... and says where")
  check_page(html, {"MainThread"}, "tools/gil_timeline.lua")
  os.remove(json); os.remove(html)
end

-- Every rank of an MPI job writes its trace (%r in the name is the rank);
-- gilua --merge-traces makes them one timeline, a group per rank.
do
  local mpit = require "support.mpi"
  if t.ok(mpit.mpiexec() ~= nil, "mpiexec is installed (make deps: openmpi-bin)") then
    local dir = t.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. t.shquote(dir))
    local r = mpit.run([[
local mpi = require "mpi"
local threading = require "threading"
local time = require "time"
local c = mpi.COMM_WORLD
local th = threading.Thread{ name = "io-" .. c.rank, target = function()
  for _ = 1, 10 do time.sleep(0.002) end
end }
th:start()
local s = 0
for i = 1, 300000 do s = s + i end
th:join()
c:barrier()
]], 3, { flags = { "--gil-trace=" .. dir .. "/rank%r.json" }, plain = true })
    t.is(r.status, 0, "mpiexec -n 3 gilua --gil-trace=DIR/rank%r.json runs")
    local files = {}
    for i = 0, 2 do
      files[#files + 1] = dir .. "/rank" .. i .. ".json"
      t.like(t.slurp(files[#files]) or "", '^{"traceEvents":%[', "rank " .. i .. " wrote its own trace")
    end
    local html = dir .. "/all.html"
    local cmd = ("%s --merge-traces %s %s 2>&1"):format(t.shquote(t.gilua()), t.shquote(html),
      table.concat({t.shquote(files[1]), t.shquote(files[2]), t.shquote(files[3])}, " "))
    local p = io.popen(cmd)
    local out = p:read("a")
    local ok = p:close()
    t.ok(ok, "gilua --merge-traces OUT.html rank0.json rank1.json rank2.json succeeds")
    t.like(out, "%d+ events from 3 traces", "... and says what it merged")
    local dom = check_page(html, {"MainThread", "io-0", "MainThread", "io-1", "MainThread", "io-2"},
                           "merged trace of 3 ranks")
    t.like(dom, '<html[^>]* data%-groups="3"', "one timeline, one group per rank")
    local groups = {}
    for name in dom:gmatch('<g class="group" data%-pid="%d+" data%-name="([^"]*)" data%-lanes="2"') do
      groups[#groups + 1] = name:match("^(%S+)")
    end
    t.is(table.concat(groups, ","), "rank0,rank1,rank2", "the groups are named after the files, in order, 2 lanes each")
    t.like(dom, "in 3 processes", "the summary counts the processes")
    -- the JSON itself: every process keeps its own pid, the events all there
    local json = dir .. "/all.json"
    local nev, ntr = gil.merge_traces(json, files)
    t.is(ntr, 3, "gil.merge_traces returns the number of traces")
    local merge = require "gil.merge"
    local doc = merge._decode(t.slurp(json), json)
    local pids, total = {}, 0
    for _, e in ipairs(doc.traceEvents) do pids[e.pid] = true end
    for _, f in ipairs(files) do
      for _, e in ipairs(merge._decode(t.slurp(f), f).traceEvents) do
        if e.name ~= "process_name" then total = total + 1 end
      end
    end
    local npids = 0
    for _ in pairs(pids) do npids = npids + 1 end
    t.is(npids, 3, "three processes in the merged JSON")
    t.is(#doc.traceEvents, total + 6, "every event of every rank is in it (plus the name and place of each process)")
    t.is(nev, #doc.traceEvents, "... as many as merge_traces said")
    t.ok(doc.otherData.start_us <= doc.otherData.end_us and #doc.otherData.merged == 3, "otherData covers the three runs")
    -- the same trace twice: the second copy gets pids of its own
    gil.merge_traces(json, { files[1], files[1] })
    doc = merge._decode(t.slurp(json), json)
    pids, npids = {}, 0
    for _, e in ipairs(doc.traceEvents) do if not pids[e.pid] then pids[e.pid] = true; npids = npids + 1 end end
    t.is(npids, 2, "two traces of one pid stay two processes")
    -- errors name the file
    local bad = dir .. "/bad.json"
    local f = assert(io.open(bad, "w")); f:write("{not json"); f:close()
    t.raises(function() gil.merge_traces(json, { files[1], bad }) end, ValueError, "a file that is not a trace is a ValueError")
    local e = select(2, pcall(gil.merge_traces, json, { bad }))
    t.like(tostring(e), "bad%.json is not a trace", "... naming it")
    t.raises(function() gil.merge_traces(json, { dir .. "/missing.json" }) end, FileNotFoundError,
             "a missing file is a FileNotFoundError")
    t.raises(function() gil.merge_traces(json, {}) end, ValueError, "nothing to merge is a ValueError")
    os.execute("rm -rf " .. t.shquote(dir))
  end
end

-- Two interpreters, a GIL each: their lanes are grouped by interpreter (a
-- trace "process" each), and both run at once.
do
  local html = t.tmpname(".html")
  local r = t.run([[
    local interpreters = require "concurrent.interpreters"
    local threading = require "threading"
    local a, b = interpreters.create(), interpreters.create()
    local function work() local s = 0 for i = 1, 2e6 do s = s + i end return s end
    local ths = {}
    for i, it in ipairs({ a, b }) do
      ths[i] = threading.Thread{ name = "w" .. i, target = function() it:call(work) end }
      ths[i]:start()
    end
    for i = 1, 2 do ths[i]:join() end
  ]], { flags = {"--gil-timeline=" .. html} })
  t.is(r.status, 0, "a timeline of two interpreters")
  -- (the main thread made the interpreters: it ran in each of them)
  local dom = check_page(html, {"MainThread", "w1", "w2", "MainThread", "w1", "MainThread", "w2"},
                         "two interpreters")
  t.like(dom, '<html[^>]* data%-groups="3"', "one group per interpreter")
  local groups = {}
  for name in dom:gmatch('<g class="group" data%-pid="%d+" data%-name="([^"]*)"') do
    groups[#groups + 1] = name:match("(interpreter %d+)")
  end
  t.is(#groups, 3, "the groups are named after the interpreters")
  t.like(dom, "in 3 interpreters %(a GIL each%)", "the summary counts the interpreters")
  os.remove(html)
end

t.done_testing()
