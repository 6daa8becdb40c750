-- tools/gil_timeline.lua: the GIL timeline page of a trace file.
--
--     gilua tools/gil_timeline.lua TRACE.json [PAGE.html]
--
-- TRACE.json is a trace that gilua wrote (gilua --gil-trace=FILE, or
-- gil.trace_start/trace_stop, or gilua_trace_start/stop from C). The page
-- (TRACE.html by default) is self-contained: open it in any browser, one
-- lane per thread (running, waiting for the GIL, blocked), drop requests
-- marked. The same JSON opens in https://ui.perfetto.dev too.
local gil = require "gil"

local trace, page = ...
if not trace or trace == "-h" or trace == "--help" then
  io.stderr:write("usage: gilua tools/gil_timeline.lua TRACE.json [PAGE.html]\n")
  os.exit(trace and 0 or 2)
end
page = page or (trace:gsub("%.json$", "") .. ".html")

local ok, err = pcall(gil.timeline, trace, page)
if not ok then
  io.stderr:write("gil_timeline: ", tostring(err):match("^[^\n]*"), "\n")
  os.exit(1)
end
print("wrote " .. page)
