--[[
sys.explore: what `gilua --explore=N script.lua [args]` runs (repl/main.c
calls main() and exits with what it returns). Internal: not a module for
scripts.

It runs the script N times, each in a child gilua of its own under the
deterministic scheduler with its own seed,

    gilua [options] --sched=random --seed=S script.lua [args]

S = base + 1 .. base + N (base: --seed, 0 by default), as many children at
a time as there are cores. This process itself is not under the scheduler:
the children run on their own, and this one only waits for them, a thread
per child at a time (subprocess waits without the GIL, so the waits
overlap). A run's outcome is its exit status, its stdout and its stderr;
the runs are grouped by outcome and each outcome is printed with its
count, the first seed that gave it and the command that replays it, the
most frequent first.

Hexadecimal addresses (0x...) are masked before runs are compared: a
table's tostring() differs from run to run (the allocator's addresses are
not the scheduler's business), and would otherwise split every outcome.
So are the thread idents of the deadlock report, "(ident N)".

With mode "off" (`--explore=N --sched=off`) the children run under the
operating system's scheduling, as a plain `gilua script.lua` does: a way to
see how often an outcome shows without the scheduler. Seeds mean nothing
there, so no replay command is printed.

Returns the exit status of the command: 0 when every run had the same
outcome, 1 when they differ, 2 when the script cannot be run at all.
]]

local subprocess = require "subprocess"
local futures = require "concurrent.futures"
local time = require "time"
local _mp = require "_multiprocessing"

local M = {}

local DEADLOCK = 3          -- GILUA_EXIT_DEADLOCK (gilua.h)
-- Lines shown of each stream, per outcome: a deadlock report of two
-- threads (on stderr) is about 17.
local SHOWN = { stdout = 8, stderr = 20 }

-- Unsigned decimal of a 64-bit seed (Lua integers are signed; a seed near
-- 2^64 is negative here, with the same bits as the C side's).
local function useed(n)
  if n >= 0 then return tostring(n) end
  local q = (n >> 1) // 5          -- n / 10, n read as unsigned
  return tostring(q) .. tostring(n - q * 10)
end
M._useed = useed

-- A word as the shell would need it to read it back.
local function shquote(s)
  if s ~= "" and not s:find("[^%w%%+,./:=@_-]") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- The deadlock report's thread idents are addresses too (pthread_t).
local function mask(s)
  return (s:gsub("0x%x+", "0x?"):gsub("%(ident %d+%)", "(ident ?)"))
end

-- The words of one run's command line (argv[0] first).
local function command(o, seed)
  local argv = { o.prog }
  for _, w in ipairs(o.options) do argv[#argv + 1] = w end
  if o.mode == "random" then
    argv[#argv + 1] = "--sched=random"
    argv[#argv + 1] = "--seed=" .. useed(seed)
  else
    argv[#argv + 1] = "--sched=" .. o.mode
  end
  if o.script:sub(1, 1) == "-" then argv[#argv + 1] = "--" end
  argv[#argv + 1] = o.script
  for _, w in ipairs(o.args) do argv[#argv + 1] = w end
  return argv
end

local function replay_line(o, seed)
  local words = {}
  for i, w in ipairs(command(o, seed)) do words[i] = shquote(w) end
  return table.concat(words, " ")
end

-- One run: its exit status (Python's returncode: -N for a signal), stdout
-- and stderr. Its stdin is /dev/null: N children cannot share a terminal.
local function run(o, seed)
  local r = subprocess.run(command(o, seed), {
    executable = o.exe, capture_output = true, stdin = subprocess.DEVNULL })
  return { seed = seed, status = r.returncode, stdout = r.stdout,
           stderr = r.stderr }
end

local function status_label(status)
  if status == DEADLOCK then return "deadlock (exit " .. DEADLOCK .. ")"
  elseif status < 0 then return "killed by signal " .. -status
  else return "exit " .. status end
end

-- The first lines of a stream, indented.
local function show(out, name, text)
  if text == "" then return end
  local lines = {}
  for l in (text:sub(-1) == "\n" and text or text .. "\n"):gmatch("(.-)\n") do
    lines[#lines + 1] = l
  end
  local label = name == "stdout" and "    " or "    " .. name .. ": "
  if #lines == 1 then
    out[#out + 1] = label .. lines[1]
    return
  end
  if name ~= "stdout" then out[#out + 1] = "    " .. name .. ":" end
  local most = SHOWN[name]
  for i = 1, math.min(#lines, most) do
    out[#out + 1] = (name == "stdout" and "    " or "      ") .. lines[i]
  end
  if #lines > most then
    out[#out + 1] = ("      ... (%d more lines)"):format(#lines - most)
  end
end

-- A line of stderr saying the run left the scheduler's control.
local function undetermined(o, stderr)
  for l in stderr:gmatch("[^\n]+") do
    if l:find("^gilua: sched: ") or l:find(o.prog .. ": sched: ", 1, true) == 1 then
      return true
    end
  end
  return false
end

--[[
main{runs =, seed =, mode =, prog =, script =, args =, options =}
  runs     the number of runs (>= 1)
  seed     the base: the seeds are seed + 1 .. seed + runs (64 bits)
  mode     the children's scheduler: "random" or "off"
  prog     argv[0] of the children, and the program name of messages
  script   the script as given, args its arguments
  options  the other options of the command line, passed to every run
]]
function M.main(o)
  o.exe = o.exe or _mp.executable()
  local f = io.open(o.script, "r")
  if not f then
    local _, err = io.open(o.script, "r")
    io.stderr:write(("%s: --explore: cannot open %s\n"):format(o.prog, err))
    return 2
  end
  f:close()

  local ncores = os.cpu_count() or 1
  local t0 = time.monotonic()
  local results = {}
  local pool = futures.ThreadPoolExecutor{ max_workers = ncores }
  local ok, err = pcall(function()
    local fs = {}
    for i = 1, o.runs do fs[i] = pool:submit(run, o, o.seed + i) end
    for i = 1, o.runs do results[i] = fs[i]:result() end
  end)
  -- On Ctrl-C (which the running children get too) or a run that could
  -- not start, the runs not started yet are dropped.
  pool:shutdown{ wait = true, cancel_futures = not ok }
  if not ok then error(err, 0) end
  local elapsed = time.monotonic() - t0

  -- Outcomes, in the order of their first seed, then the most frequent first.
  local byk, outcomes = {}, {}
  for i, r in ipairs(results) do
    local k = r.status .. "\0" .. mask(r.stdout) .. "\0" .. mask(r.stderr)
    local oc = byk[k]
    if not oc then
      oc = { first = r, count = 0, order = i }
      byk[k] = oc
      outcomes[#outcomes + 1] = oc
    end
    oc.count = oc.count + 1
  end
  table.sort(outcomes, function(a, b)
    if a.count ~= b.count then return a.count > b.count end
    return a.order < b.order
  end)

  local out = {}
  local name = o.script:match("[^/]*$")
  out[1] = ("explore: %d run%s of %s, %d distinct outcome%s (%.1f s, %d at a time%s)")
    :format(o.runs, o.runs == 1 and "" or "s", name, #outcomes,
            #outcomes == 1 and "" or "s", elapsed, ncores,
            o.mode == "random" and "" or ", --sched=" .. o.mode .. ": seeds do not replay")
  for i, oc in ipairs(outcomes) do
    local r = oc.first
    local head = ("[%d] %d run%s"):format(i, oc.count, oc.count == 1 and "" or "s")
    if o.mode == "random" then
      head = head .. (" (first: seed %s)"):format(useed(r.seed))
    end
    out[#out + 1] = ("%-32s %s"):format(head, status_label(r.status))
    if o.mode == "random" then
      out[#out + 1] = "    replay: " .. replay_line(o, r.seed)
      if undetermined(o, r.stderr) then
        out[#out + 1] = "    (this run left the scheduler: its replay may differ)"
      end
    end
    if r.stdout == "" and r.stderr == "" then out[#out + 1] = "    (no output)" end
    show(out, "stdout", r.stdout)
    show(out, "stderr", r.stderr)
  end
  io.stdout:write(table.concat(out, "\n"), "\n")
  io.stdout:flush()
  return #outcomes == 1 and 0 or 1
end

return M
