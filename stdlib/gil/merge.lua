--[[
gil.merge: the GIL traces of several processes (the ranks of an MPI job,
the workers of a pool) as one trace, each process a group of its own.

    gil.merge_traces("all.json", {"rank0.json", "rank1.json", "rank2.json"})
    gil.merge_traces("all.html", files)       -- the timeline page at once
    gilua --merge-traces all.json rank*.json  -- the same from the shell

Each input is a trace gilua wrote (Chrome trace-event JSON). Its events
keep their thread ids and timestamps; its process is named after the file
("rank1 (pid 4242)") and sorted in the order the files are given. Two
processes with the same pid (on two hosts) get distinct ones.

Timestamps are each machine's CLOCK_MONOTONIC: the processes of one
machine line up exactly. A trace whose time range does not meet the first
one's was taken on another machine (whose clock counts from its own boot):
it is shifted to start with the first, which lines the runs up to within
their start-up.

Returns the number of events written and of traces merged. A file that
is not a trace is a ValueError naming it.
]]

local exc = require "gilua.exceptions"
local args = require "gilua.args"

local find, sub, byte, char, format = string.find, string.sub, string.byte, string.char, string.format
local concat, tonumber, type, pairs, ipairs, error, setmetatable, getmetatable =
  table.concat, tonumber, type, pairs, ipairs, error, setmetatable, getmetatable
local mtype = math.type

local M = {}

-- JSON ------------------------------------------------------------------------------

local ARRAY = {}                 -- the metatable of decoded arrays

local ESC = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n",
              r = "\r", t = "\t" }

local function decode(s, name)
  local pos = 1
  local function fail(what)
    error(exc.ValueError(format("%s is not a trace: %s at byte %d", name, what, pos)), 0)
  end
  local function skip()
    pos = find(s, "[^ \t\r\n]", pos) or #s + 1
  end
  local function str()
    local i, parts = pos + 1, nil
    while true do
      local j = find(s, '["\\]', i)
      if not j then fail("unterminated string") end
      if byte(s, j) == 34 then
        pos = j + 1
        if parts then
          parts[#parts + 1] = sub(s, i, j - 1)
          return concat(parts)
        end
        return sub(s, i, j - 1)
      end
      parts = parts or {}
      parts[#parts + 1] = sub(s, i, j - 1)
      local c = sub(s, j + 1, j + 1)
      if c == "u" then
        local code = tonumber(sub(s, j + 2, j + 5), 16)
        if not code then fail("bad \\u escape") end
        i = j + 6
        if code >= 0xD800 and code < 0xDC00 and sub(s, i, i + 1) == "\\u" then
          local low = tonumber(sub(s, i + 2, i + 5), 16)
          if low and low >= 0xDC00 and low < 0xE000 then
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
            i = i + 6
          end
        end
        parts[#parts + 1] = utf8.char(code)
      else
        local e = ESC[c]
        if not e then fail("bad escape") end
        parts[#parts + 1] = e
        i = j + 2
      end
    end
  end
  local value
  function value()
    skip()
    local c = byte(s, pos)
    if c == 123 then                                  -- {
      local t = {}
      pos = pos + 1
      skip()
      if byte(s, pos) == 125 then pos = pos + 1; return t end
      while true do
        skip()
        if byte(s, pos) ~= 34 then fail("a key expected") end
        local k = str()
        skip()
        if byte(s, pos) ~= 58 then fail("':' expected") end
        pos = pos + 1
        t[k] = value()
        skip()
        c = byte(s, pos)
        pos = pos + 1
        if c == 125 then return t end
        if c ~= 44 then fail("',' or '}' expected") end
      end
    elseif c == 91 then                               -- [
      local t, n = setmetatable({}, ARRAY), 0
      pos = pos + 1
      skip()
      if byte(s, pos) == 93 then pos = pos + 1; return t end
      while true do
        n = n + 1
        t[n] = value()
        skip()
        c = byte(s, pos)
        pos = pos + 1
        if c == 93 then return t end
        if c ~= 44 then fail("',' or ']' expected") end
      end
    elseif c == 34 then
      return str()
    elseif c == 116 and sub(s, pos, pos + 3) == "true" then pos = pos + 4; return true
    elseif c == 102 and sub(s, pos, pos + 4) == "false" then pos = pos + 5; return false
    elseif c == 110 and sub(s, pos, pos + 3) == "null" then pos = pos + 4; return nil
    end
    local a, b = find(s, "^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
    if not a then fail("a value expected") end
    pos = b + 1
    return tonumber(sub(s, a, b)) or fail("bad number")
  end
  local v = value()
  skip()
  if pos <= #s then fail("trailing text") end
  return v
end

-- '<', '>' and '&' are escaped as gil_trace.c does: the text may go into
-- the timeline page's <script> element.
local function quote(s)
  return '"' .. s:gsub('[%c"\\<>&]', function(c)
    if c == '"' or c == "\\" then return "\\" .. c end
    return format("\\u%04x", byte(c))
  end) .. '"'
end

local encode
local function number(v)
  if mtype(v) == "integer" then return format("%d", v) end
  if v ~= v or v == math.huge or v == -math.huge then return "null" end
  local s = format("%.3f", v)
  if tonumber(s) == v then return s end
  return format("%.17g", v)
end

function encode(v, out)
  local t = type(v)
  if t == "string" then out[#out + 1] = quote(v)
  elseif t == "number" then out[#out + 1] = number(v)
  elseif t == "boolean" then out[#out + 1] = v and "true" or "false"
  elseif t == "table" then
    if getmetatable(v) == ARRAY then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode(v[i], out)
      end
      out[#out + 1] = "]"
    else
      out[#out + 1] = "{"
      local first = true
      for k, x in pairs(v) do
        if not first then out[#out + 1] = "," end
        first = false
        out[#out + 1] = quote(tostring(k))
        out[#out + 1] = ":"
        encode(x, out)
      end
      out[#out + 1] = "}"
    end
  else
    out[#out + 1] = "null"
  end
end

-- Merging ---------------------------------------------------------------------------

local function read(path)
  local f, err, code = io.open(path, "rb")
  if not f then
    local cls = code == 2 and exc.FileNotFoundError or exc.OSError
    error(cls(code, err:match(": (.*)$") or err, path), 0)
  end
  local s = f:read("a")
  f:close()
  return s
end

-- "run/rank1.json" -> "rank1"
local function label(path)
  return (path:match("([^/]*)$"):gsub("%.json$", ""))
end

-- The time range of a trace: its otherData, else its events.
local function range(doc, events)
  local other = doc.otherData or {}
  local t0, t1 = other.start_us, other.end_us
  if type(t0) == "number" and type(t1) == "number" then return t0, t1 end
  t0, t1 = math.huge, -math.huge
  for _, e in ipairs(events) do
    if type(e.ts) == "number" then
      if e.ts < t0 then t0 = e.ts end
      local t = e.ts + (type(e.dur) == "number" and e.dur or 0)
      if t > t1 then t1 = t end
    end
  end
  return t0, t1
end

function M.merge(out, files)
  args.check(out, "string", "gil.merge_traces", "out")
  args.check(files, "table", "gil.merge_traces", "files")
  if #files == 0 then error(exc.ValueError("gil.merge_traces(): no trace to merge"), 2) end
  local traces = {}
  for i, path in ipairs(files) do
    args.check(path, "string", "gil.merge_traces", "files[" .. i .. "]")
    local doc = decode(read(path), path)
    local events = type(doc) == "table" and (getmetatable(doc) == ARRAY and doc or doc.traceEvents)
    if type(events) ~= "table" or getmetatable(events) ~= ARRAY then
      error(exc.ValueError(path .. " is not a trace: no traceEvents"), 0)
    end
    if getmetatable(doc) == ARRAY then doc = {} end
    local t0, t1 = range(doc, events)
    traces[i] = { path = path, doc = doc, events = events, t0 = t0, t1 = t1 }
  end
  local first = traces[1]
  local start, stop = math.huge, -math.huge
  local used, nextpid = {}, 1
  local lines, nevents = {}, 0
  local function emit(e)
    local buf = {}
    encode(e, buf)
    lines[#lines + 1] = concat(buf)
    nevents = nevents + 1
  end
  for i, tr in ipairs(traces) do
    -- another machine's clock: start with the first trace
    local shift = 0
    if tr.t1 < first.t0 or tr.t0 > first.t1 then shift = first.t0 - tr.t0 end
    -- one pid per process of the merged trace
    local pids = {}
    for _, e in ipairs(tr.events) do
      local p = e.pid
      if p ~= nil and pids[p] == nil then
        local q = p
        if used[q] then
          while used[nextpid] do nextpid = nextpid + 1 end
          q = nextpid
        end
        used[q] = true
        pids[p] = q
      end
    end
    local name = label(tr.path)
    for old, new in pairs(pids) do
      emit{ ph = "M", name = "process_name", pid = new, tid = 0,
            args = { name = ("%s (pid %s)"):format(name, tostring(old)) } }
      emit{ ph = "M", name = "process_sort_index", pid = new, tid = 0, args = { sort_index = i } }
    end
    for _, e in ipairs(tr.events) do
      if not (e.ph == "M" and (e.name == "process_name" or e.name == "process_sort_index")) then
        if e.pid ~= nil then e.pid = pids[e.pid] end
        if type(e.ts) == "number" then e.ts = e.ts + shift end
        emit(e)
      end
    end
    if tr.t0 + shift < start then start = tr.t0 + shift end
    if tr.t1 + shift > stop then stop = tr.t1 + shift end
  end
  local names, paths = {}, setmetatable({}, ARRAY)
  for j, tr in ipairs(traces) do names[j], paths[j] = label(tr.path), tr.path end
  local od = first.doc.otherData or {}
  local other = { producer = od.producer or "gilua", clock = "CLOCK_MONOTONIC",
                  start_us = start, end_us = stop, switch_interval_ms = od.switch_interval_ms,
                  gil_policy = od.gil_policy, merged = paths,
                  command = ("%d traces merged: %s"):format(#traces, concat(names, " ")) }
  local buf = {}
  encode(other, buf)
  local html = out:match("%.html?$") ~= nil
  local json = html and os.tmpname() or out
  local f, err = io.open(json, "wb")
  if not f then error(exc.OSError(err), 0) end
  f:write('{"traceEvents":[\n', concat(lines, ",\n"), '\n],\n"displayTimeUnit":"ms",\n"otherData":',
          concat(buf), "}\n")
  f:close()
  if html then
    local ok, e = pcall(require("gil").timeline, json, out)
    os.remove(json)
    if not ok then error(e, 0) end
  end
  return nevents, #traces
end

M._decode = decode

return M
