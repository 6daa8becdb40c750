#!/usr/bin/env gilua
--[[
sched_explore.lua: the command line of the deterministic scheduler
(--sched, --seed, --explore) and explore's driver: running a script N
times, grouping the runs by outcome, the exit status; and the samples of
samples/sched/.

The grouping is checked first with real child processes whose outcome
varies by itself: each run takes the next number from a shared directory
(mkdir is atomic, so the numbers 1..N go to the N runs exactly once each,
whatever the order) and prints or exits according to it; these run under
--explore --sched=off (the operating system's scheduling), so that the
counts are known. Then under the scheduler: seeds, replays, and the
samples' claims (races found and replayed, one outcome with a Lock, the
deadlock found, virtual time).
]]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local t = require "tap"
local time = require "time"

local gilua = t.gilua()
local q = t.shquote
local root = (arg[0]:match("^(.*)/tests/[^/]*$") or ".")

-- Runs gilua with the words given (shell-quoted here); returns exit
-- status, stdout, stderr and the elapsed time.
local function run(...)
  local words = { q(gilua) }
  for _, w in ipairs({...}) do words[#words + 1] = q(w) end
  local outp, errp = t.tmpname(), t.tmpname()
  local t0 = time.monotonic()
  local _, how, code = os.execute("{ " .. table.concat(words, " ") ..
                                  " </dev/null ; } >" .. q(outp) .. " 2>" .. q(errp))
  local dt = time.monotonic() - t0
  local out, err = t.slurp(outp) or "", t.slurp(errp) or ""
  os.remove(outp)
  os.remove(errp)
  return (how == "signal") and 128 + code or code, out, err, dt
end

local function write_file(text)
  local name = t.tmpname(".lua")
  local f = assert(io.open(name, "wb"))
  f:write(text)
  f:close()
  return name
end

-- A fresh directory the runs of one explore share.
local function fresh_dir()
  local d = t.tmpname()
  os.remove(d)
  assert(os.execute("mkdir " .. q(d)))
  return d
end

-- The script's preamble: K is this run's number, 1..N, each once.
local TICKET = [[
local dir = arg[1]
local K = 1
while not os.execute("mkdir '" .. dir .. "/" .. K .. "' 2>/dev/null") do K = K + 1 end
]]

-- The outcomes printed by explore: {count=, head=, body=} in order.
local function outcomes(out)
  local list = {}
  for line in out:gmatch("[^\n]+") do
    local n, rest = line:match("^%[%d+%] (%d+) runs? ?(.*)$")
    if n then
      list[#list + 1] = { count = tonumber(n), head = rest, body = "" }
    elseif #list > 0 then
      list[#list].body = list[#list].body .. line .. "\n"
    end
  end
  return list
end

---------------------------------------------------------------- options

do
  local st, out = run("-h")
  t.is(st, 0, "-h exits with 0")
  t.like(out, "%-%-sched=MODE", "the usage lists --sched=MODE")
  t.like(out, "%-%-seed=N", "the usage lists --seed=N")
  t.like(out, "%-%-explore=N", "the usage lists --explore=N")

  -- bad values: status 2, one line naming the option, no code run
  local bad = {
    { "--seed=abc", "--seed" }, { "--seed=-1", "--seed" }, { "--seed=", "--seed" },
    { "--seed=+5", "--seed" }, { "--seed= 5", "--seed" }, { "--seed=1.5", "--seed" },
    { "--seed=18446744073709551616", "--seed" },
    { "--explore=0", "--explore" }, { "--explore=x", "--explore" },
    { "--explore=-3", "--explore" }, { "--explore=", "--explore" },
    { "--explore=1000001", "--explore" },
    { "--sched=fifo", "--sched" }, { "--sched=", "--sched" }, { "--sched=RANDOM", "--sched" },
  }
  for _, b in ipairs(bad) do
    local st2, out2, err2 = run(b[1], "-e", "print('ran')")
    t.is(st2, 2, b[1] .. ": exit status 2")
    t.like(err2, "^%S*gilua: [^\n]*" .. b[2]:gsub("%-", "%%-") .. "[^\n]*\n$",
           b[1] .. ": one line naming " .. b[2])
    t.is(out2, "", b[1] .. ": no code ran")
  end
  local _, _, err = run("--sched=fifo")
  t.like(err, "random, off", "an unknown mode: the message lists the modes")
  _, _, err = run("--seed=x")
  t.like(err, "18446744073709551615", "a bad seed: the message gives the range")

  st, out, err = run("-e", "print(1)", "--seed")
  t.is(st, 2, "--seed without its value: status 2")
  t.like(err, "'%-%-seed' needs a value", "... and says so")
  st = run("-e", "print(1)", "--explore")
  t.is(st, 2, "--explore without its value: status 2")

  st, out, err = run("--seed=5", "-e", "print(1)")
  t.is(st, 2, "--seed alone (no --sched, no --explore): status 2")
  t.like(err, "%-%-seed needs %-%-sched=random or %-%-explore", "... with the reason")

  st, out = run("--sched=off", "--seed=18446744073709551615", "-e", "print('ran')")
  t.is(st, 0, "--sched=off --seed=2^64-1: accepted")
  t.is(out, "ran\n", "... and the code runs")
  st, out = run("--sched", "off", "--seed", "7", "-e", "print('ran')")
  t.is(st, 0, "--sched off --seed 7 (values as separate words): accepted")
  t.is(out, "ran\n", "... and the code runs")

  -- --sched random is --sched=random, whatever this build's core makes of it
  local st1, out1, err1 = run("--sched=random", "--seed=3", "-e", "print('ran')")
  local st2, out2, err2 = run("--sched", "random", "--seed", "3", "-e", "print('ran')")
  t.is(st2, st1, "--sched random --seed 3: the same status as --sched=random --seed=3")
  t.is(out2, out1, "... the same output")
  t.is(err2, err1, "... the same errors")
  t.is(st1, 0, "--sched=random --seed=3 runs the code")
  t.is(out1, "ran\n", "... which prints")

  -- the mode and the seed reach the scheduler, all 64 bits of it
  local show = "local s = require('sys').getscheduler() print(s.mode, s.seed)"
  st, out = run("--sched=random", "--seed=18446744073709551615", "-e", show)
  t.is(out, "random\t-1\n", "--seed=2^64-1 reaches the scheduler (-1: the same 64 bits)")
  st, out = run("--sched=random", "-e", show)
  t.is(out, "random\t0\n", "--sched=random alone: seed 0")
  st, out = run("--sched=off", "-e", show)
  t.is(out, "off\tnil\n", "--sched=off: the scheduler is off")

  -- --explore's usage errors: status 2 (1 would read as "the runs differ")
  local script = write_file("print('x')\n")
  local usage = {
    { { "--explore=3", "-e", "print(1)" }, "needs a script file", "-e and no script" },
    { { "--explore=3" }, "needs a script file", "no script" },
    { { "--explore=3", "-" }, "needs a script file", "standard input" },
    { { "--explore=3", "-i", script }, "interactive", "-i" },
    { { "--explore=3", "--gil-trace=" .. t.tmpname(), script }, "GIL trace", "--gil-trace" },
    { { "--explore=3", "-m", "threading" }, "script file", "-m" },
    { { "--explore=3", "--sched=fifo", script }, "unknown scheduler mode", "a bad --sched" },
    { { "--explore=3", "-x", script }, "unrecognized option '%-x'", "an unknown option after it" },
    { { "--explore=3", t.tmpname() .. "-missing.lua" }, "cannot open", "a missing script" },
  }
  for _, u in ipairs(usage) do
    local st3, out3, err3 = run(table.unpack(u[1]))
    t.is(st3, 2, "--explore with " .. u[3] .. ": status 2")
    t.like(err3, u[2], "--explore with " .. u[3] .. ": says why")
    t.unlike(out3, "explore:", "--explore with " .. u[3] .. ": nothing run")
  end
  os.remove(script)
end

---------------------------------------------------------------- grouping

-- 9 runs: the runs numbered 3, 6, 9 print something else.
do
  local dir = fresh_dir()
  local script = write_file(TICKET .. [[
print(K % 3 == 0 and "fizz" or "plain")
]])
  local st, out = run("--explore=9", "--sched=off", script, dir)
  t.is(st, 1, "runs with two outcomes: exit status 1")
  t.like(out, "^explore: 9 runs of " .. script:match("[^/]*$"):gsub("%p", "%%%0")
         .. ", 2 distinct outcomes", "the header: runs, script, outcomes")
  local oc = outcomes(out)
  t.is(#oc, 2, "two outcomes listed")
  t.is(oc[1] and oc[1].count, 6, "the most frequent first: 6 runs")
  t.is(oc[1] and oc[1].body, "    plain\n", "... its output")
  t.is(oc[2] and oc[2].count, 3, "then 3 runs")
  t.is(oc[2] and oc[2].body, "    fizz\n", "... its output")
  t.like(oc[1] and oc[1].head or "", "exit 0$", "the exit status is in the outcome's header")
  local n = 0
  for _ in io.popen("ls " .. q(dir)):lines() do n = n + 1 end
  t.is(n, 9, "every run ran once")
  local cores = os.cpu_count()
  t.like(out, ", " .. cores .. " at a time", "as many runs at a time as cores (" .. cores .. ")")
  os.execute("rm -rf " .. q(dir))
  os.remove(script)
end

-- One outcome: exit status 0; addresses are masked, nothing else is.
do
  local dir = fresh_dir()
  local script = write_file(TICKET .. [[
print(tostring({}), ("0x%x"):format(4096 + K))
]])
  local st, out = run("--explore=4", "--sched=off", script, dir)
  t.is(st, 0, "runs that differ only by 0x... addresses: one outcome, exit 0")
  t.like(out, "1 distinct outcome", "the header says 1 distinct outcome")
  local oc = outcomes(out)
  t.is(oc[1] and oc[1].count, 4, "all 4 runs in it")
  t.like(oc[1] and oc[1].body or "", "^    table: 0x%x+\t0x10%x%x\n$",
         "the output shown is a run's own, addresses unmasked")
  os.execute("rm -rf " .. q(dir))
  dir = fresh_dir()
  local script2 = write_file(TICKET .. [[
print(("1%x"):format(4096 + K))
]])
  st, out = run("--explore=4", "--sched=off", script2, dir)
  t.is(st, 1, "hexadecimal digits without 0x are compared: 4 outcomes, exit 1")
  t.is(#outcomes(out), 4, "... 4 outcomes listed")
  os.execute("rm -rf " .. q(dir))
  os.remove(script)
  os.remove(script2)
end

-- Exit statuses: a deadlock (GILUA_EXIT_DEADLOCK, 3), another status, a
-- signal; stderr is part of an outcome and shown.
do
  local dir = fresh_dir()
  local script = write_file(TICKET .. [[
if K <= 3 then io.stderr:write("waits forever\n"); os.exit(3)
elseif K <= 5 then os.exit(5)
elseif K == 6 then os.execute("kill -9 " .. os.getpid()) end
print("done")
]])
  local st, out = run("--explore=9", "--sched=off", script, dir)
  t.is(st, 1, "four outcomes: exit 1")
  local oc = outcomes(out)
  t.is(#oc, 4, "four outcomes listed")
  t.is(oc[1] and oc[1].count, 3, "the deadlocks and the clean runs: 3 each")
  local dl
  for _, o in ipairs(oc) do if o.head:find("deadlock") then dl = o end end
  t.ok(dl and dl.head:find("deadlock %(exit 3%)$"), "status 3 is labelled deadlock (exit 3)")
  t.is(dl and dl.body, "    stderr: waits forever\n", "... its stderr is shown")
  t.ok(out:find("\n%[%d%] 2 runs +exit 5\n"), "another status: exit 5, 2 runs")
  t.ok(out:find("\n%[%d%] 1 run +killed by signal 9\n"), "a signal: killed by signal 9, 1 run")
  t.ok(out:find("\n%[%d%] 3 runs +exit 0\n    done\n"), "the clean runs: exit 0, their output")
  os.execute("rm -rf " .. q(dir))
  os.remove(script)
end

-- Long output shows its first lines; options before --explore reach the
-- runs; arguments too.
do
  local script = write_file([[
for i = 1, 20 do print("line " .. i) end
io.stderr:write("warn a\nwarn b\n")
print(X, ...)
]])
  local st, out = run("-e", "X = 42", "--explore=2", "--sched=off", script, "one", "two")
  t.is(st, 0, "identical runs: exit 0")
  t.like(out, "\n    line 1\n.-\n    line 8\n      %.%.%. %(13 more lines%)\n",
         "a long output: its first 8 lines, then how many more")
  t.like(out, "\n    stderr:\n      warn a\n      warn b\n", "stderr on lines of its own")
  t.unlike(out, "line 9\n", "the rest is not printed")
  -- the last line was cut from the list: check it through a short script
  local script2 = write_file("print(X, ...)\n")
  st, out = run("-e", "X = 42", "--explore=2", "--sched=off", script2, "one", "two")
  t.like(out, "\n    42\tone\ttwo\n", "-e before --explore and the script's arguments reach every run")
  os.remove(script)
  os.remove(script2)
end

-- The runs overlap: 2 x cores runs of a 1 s sleep take about 2 s, not
-- 2 x cores seconds (one retry: the machine may be loaded).
do
  local cores = os.cpu_count() or 1
  local script = write_file("require('time').sleep(1)\n")
  local st, dt
  for _ = 1, 2 do
    local t0 = time.monotonic()
    st = run("--explore=" .. 2 * cores, "--sched=off", script)
    dt = time.monotonic() - t0
    if dt >= 1.9 and dt < math.max(3.5, cores) then break end
  end
  t.is(st, 0, "sleeping runs: one outcome")
  t.between(dt, 1.9, math.max(3.5, cores),
            ("%d runs of a 1 s sleep, %d at a time: %.2f s"):format(2 * cores, cores, dt))
  os.remove(script)
end

---------------------------------------------------------------- seeds and replay

-- Under --sched=random (the default of --explore), every outcome prints
-- its first seed and the command that replays it; running that command
-- gives the same outcome.
do
  local script = write_file("print('hello')\n")
  local st, out = run("--explore=3", script)
  local oc = outcomes(out)
  t.ok(#oc >= 1, "--explore=3 ran the script")
  t.like(oc[1] and oc[1].head or "", "^%(first: seed 1%)", "seeds start at 1")
  local replay = out:match("\n    replay: ([^\n]+)")
  t.is(replay, gilua .. " --sched=random --seed=1 " .. script,
       "the replay command: the program as invoked, --sched=random --seed=S, the script")
  if replay then
    local words = {}
    for w in replay:gmatch("%S+") do words[#words + 1] = w end
    table.remove(words, 1)
    local st2, out2, err2 = run(table.unpack(words))
    local first = oc[1].head:match("(%S+ %d+)$")
    t.is("exit " .. st2, first, "the replayed run's status is the outcome's")
    local body = ""
    for l in (out2 .. err2):gmatch("[^\n]+") do body = body .. l end
    local shown = (oc[1].body:gsub("^    replay:[^\n]*\n", ""):gsub("    stderr: ", ""):gsub("\n", ""):gsub("^%s+", ""))
    t.is(body:gsub("%s", ""), shown:gsub("%s", ""), "the replayed run prints the outcome's output")
  end
  st, out = run("--seed=41", "--explore=2", script)
  t.like(out, "%(first: seed 42%)", "--seed=41: seeds start at 42")
  st, out = run("--seed=18446744073709551614", "--explore=1", script)
  t.like(out, "%(first: seed 18446744073709551615%)", "a seed above 2^63 prints unsigned")
  t.like(out, "%-%-seed=18446744073709551615 ", "... and replays with that seed")
  os.remove(script)
end

---------------------------------------------------------------- under the scheduler

-- Runs a replay command line as printed (words split at spaces: the test's
-- paths have none) and returns its status, stdout and stderr.
local function replay(line)
  local words = {}
  for w in line:gmatch("%S+") do words[#words + 1] = w end
  table.remove(words, 1)
  return run(table.unpack(words))
end

-- The seeds reach the runs: each run prints its scheduler's seed, so
-- every run is an outcome of its own.
do
  local script = write_file([[
local s = require("sys").getscheduler()
print(s.seed, s.mode)
]])
  local st, out = run("--seed=100", "--explore=5", script)
  t.is(st, 1, "5 runs that print their seed: 5 outcomes, exit 1")
  local oc = outcomes(out)
  t.is(#oc, 5, "5 outcomes")
  local seen = {}
  for _, o in ipairs(oc) do
    local first = o.head:match("first: seed (%d+)")
    t.is(o.body:match("\n    (%d+)\trandom\n"), first,
         "seed " .. tostring(first) .. ": the run got --sched=random --seed=" .. tostring(first))
    if first then seen[tonumber(first)] = true end
  end
  t.ok(seen[101] and seen[105] and not seen[100] and not seen[106],
       "--seed=100 --explore=5: seeds 101 to 105")
  os.remove(script)
end

-- The course's race: several outcomes, each replayed by its seed.
local race_dt
do
  local t0 = time.monotonic()
  local st, out = run("--explore=50", root .. "/samples/sched/race.lua")
  race_dt = time.monotonic() - t0
  t.is(st, 1, "race.lua under --explore=50: outcomes differ, exit 1")
  local oc = outcomes(out)
  t.ok(#oc >= 2, "race.lua: at least 2 distinct outcomes (" .. #oc .. ")")
  local lost = false
  for i, o in ipairs(oc) do
    local line = o.body:match("^    replay: ([^\n]+)")
    local n = o.body:match("\n    compteur = (%d+)\n")
    if tonumber(n) and tonumber(n) < 4000 then lost = true end
    if line then
      local st2, out2, err2 = replay(line)
      t.is(st2, 0, ("outcome %d replayed: exit 0"):format(i))
      t.is(out2, "compteur = " .. tostring(n) .. "\n",
           ("outcome %d replayed (%s): compteur = %s"):format(i, line:match("%-%-seed=%d+"), n))
      t.is(err2, "", ("outcome %d replayed: nothing on stderr"):format(i))
    else
      t.ok(false, ("outcome %d has a replay line"):format(i))
    end
  end
  t.ok(lost, "some seed loses updates (compteur < 4000)")
end
t.note(("--explore=50 on race.lua: %.2f s"):format(race_dt))

do
  local st, out = run("--explore=50", root .. "/samples/sched/race_lock.lua")
  t.is(st, 0, "race_lock.lua under --explore=50: exit 0")
  local oc = outcomes(out)
  t.is(#oc, 1, "race_lock.lua: exactly one outcome")
  t.is(oc[1] and oc[1].count, 50, "... all 50 runs")
  t.like(oc[1] and oc[1].body or "", "\n    compteur = 4000\n$", "... compteur = 4000")
end

do
  local st, out = run("--explore=100", root .. "/samples/sched/deadlock.lua")
  t.is(st, 1, "deadlock.lua under --explore=100: outcomes differ, exit 1")
  local dl
  for _, o in ipairs(outcomes(out)) do
    if o.head:find("deadlock %(exit 3%)$") then dl = o end
  end
  t.ok(dl, "a deadlock outcome is found")
  local line = dl and dl.body:match("^    replay: ([^\n]+)")
  if line then
    local st2, out2, err2 = replay(line)
    t.is(st2, 3, "its seed replays the deadlock: exit 3")
    local a = err2:match("\n  Thread%-A [^\n]* waits on lock_b %(a Lock at (0x%x+)%), held by Thread%-B\n")
    local b = err2:match("\n  Thread%-B [^\n]* waits on lock_a %(a Lock at (0x%x+)%), held by Thread%-A\n")
    t.ok(a and b and a ~= b, "the report: Thread-A waits on lock_b, which Thread-B holds, and the reverse")
    t.like(err2, "deadlock%.lua:%d+: in function", "... with the threads' tracebacks")
    t.is(out2, "", "no transfer line: the run never ended")
    local n = 0
    for _, o in ipairs(outcomes(out)) do
      if o.head:find("deadlock") then n = n + 1 end
    end
    t.is(n, 1, "the deadlocking seeds make one outcome (thread idents masked)")
  end
end

do
  local st, out, err, dt = run("--sched=random", root .. "/samples/sched/virtual_time.lua")
  t.is(st, 0, "virtual_time.lua under --sched=random: exit 0")
  t.is(err, "", "... nothing on stderr")
  t.ok(dt < 2, ("... 7.5 s of sleeps in %.2f s of real time"):format(dt))
  t.like(out, "^ 1%.000 s  📦 Produit: Prod1_item_1\n", "the first item at exactly 1.000 s")
  t.like(out, "\n 2%.500 s  ✅ Cons1 a terminé: Prod1_item_1\n", "its processing ends at exactly 2.500 s")
  t.like(out, "\n 7%.500 s  fin\n$", "the end at exactly 7.500 s")
  local _, out2 = run("--sched=random", "--seed=99", root .. "/samples/sched/virtual_time.lua")
  local function instants(s) local r = {} for x in s:gmatch("(%d+%.%d+) s") do r[#r + 1] = x end table.sort(r) return table.concat(r, " ") end
  t.is(instants(out2), instants(out), "another seed: the same instants")
end

-- A run that left the scheduler's control (a thread waited on a child
-- process past the scheduler's grace) is marked.
do
  local script = write_file([[
local threading, time = require "threading", require "time"
local th = threading.Thread{target = function() for _ = 1, 3 do time.sleep(0.1) end end}
th:start()
require("subprocess").run({"sleep", "0.3"})
th:join()
print("fini")
]])
  local st, out = run("--explore=2", script)
  t.is(st, 0, "a run that leaves the scheduler: one outcome")
  t.like(out, "\n    stderr: gilua: sched: ", "its stderr has the scheduler's line")
  t.like(out, "\n    replay: [^\n]+\n    %(this run left the scheduler: its replay may differ%)\n",
         "its outcome is marked under the replay line")
  os.remove(script)
end

---------------------------------------------------------------- samples

do
  local st, out = run(root .. "/samples/sched/race_lock.lua")
  t.is(st, 0, "race_lock.lua runs")
  t.is(out, "compteur = 4000\n", "race_lock.lua: no update lost")
  st, out = run(root .. "/samples/sched/race.lua")
  t.is(st, 0, "race.lua runs")
  t.like(out, "^compteur = %d+\n$", "race.lua prints the counter")
end

t.done_testing()
