#!/usr/bin/env gilua
-- The deterministic scheduler: the same seed gives the same run (output
-- and switch counts), on a loaded machine too; other seeds other
-- interleavings; virtual time; the deadlock report; what it refuses; and
-- how it says that a run may not replay.

local t = require "tap"
local sys = require "sys"
local threading = require "threading"
local time = require "time"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local MIX = here .. "/sched/mix.lua"

local function gilua(args)
  local line = t.shquote(t.gilua())
  for _, a in ipairs(args) do line = line .. " " .. t.shquote(a) end
  local out, err = t.tmpname(), t.tmpname()
  local ok, how, code = os.execute(line .. " </dev/null >" .. out .. " 2>" .. err)
  local r = { status = how == "exit" and code or 128 + code,
              stdout = t.slurp(out) or "", stderr = t.slurp(err) or "" }
  os.remove(out)
  os.remove(err)
  return r
end

local function distinct(list)
  local seen, n = {}, 0
  for _, v in ipairs(list) do
    if not seen[v] then seen[v] = true; n = n + 1 end
  end
  return n
end


-- Same seed, same run ----------------------------------------------------------------------------

local function twenty_runs(seed)
  local outs = {}
  for i = 1, 20 do
    local r = gilua({MIX, tostring(seed)})
    if r.status ~= 0 then return nil, "run " .. i .. ": status " .. r.status .. ": " .. r.stderr end
    outs[i] = r.stdout
  end
  return outs
end

local outs, why = twenty_runs(11)
t.ok(outs ~= nil, "20 runs of the 4-thread program with seed 11 succeed", why)
if outs then
  t.is(distinct(outs), 1, "... and print the same output, switch counts included")
  t.like(outs[1], "switches: %d+", "... which shows the switch count")
  t.like(outs[1], "w1 woke at 0%.51; w2 woke at 0%.52; w3 woke at 0%.53; w4 woke at 0%.54",
         "... and virtual times to the hundredth")
end

-- The same with a CPU-bound process beside it: the OS schedules differently,
-- the run does not change.
do
  local busy = io.popen(t.shquote(t.gilua()) ..
    " -e 'local x = 0 for i = 1, 3e9 do x = x + i end' & echo $!")
  local pid = busy:read("l")
  busy:close()
  local loaded = twenty_runs(11)
  os.execute("kill " .. pid .. " 2>/dev/null")
  t.ok(loaded ~= nil and distinct(loaded) == 1 and outs and loaded[1] == outs[1],
       "with a CPU-bound process beside them, 20 more runs print the same")
end

-- Other seeds, other interleavings.
do
  local seen = {}
  for seed = 1, 10 do seen[#seen + 1] = gilua({MIX, tostring(seed)}).stdout end
  t.ok(distinct(seen) >= 3, "10 seeds give several interleavings",
       distinct(seen) .. " distinct")
end


-- The course's literal race ----------------------------------------------------------------------

local RACE = [[
local sys, threading = require "sys", require "threading"
sys.setscheduler{mode = "random", seed = tonumber(arg[1])}
local lock = arg[2] == "lock" and threading.Lock()
compteur = 0
local function work()
  for _ = 1, 1000 do
    if lock then lock:acquire() end
    local temp = compteur
    compteur = temp + 1
    if lock then lock:release() end
  end
end
local ts = {}
for i = 1, 4 do ts[i] = threading.Thread{target = work}; ts[i]:start() end
for i = 1, 4 do ts[i]:join() end
print(compteur)
]]
do
  local race = t.tmpname(".lua")
  local f = assert(io.open(race, "w"))
  f:write(RACE)
  f:close()
  local plain, locked = {}, {}
  for seed = 1, 12 do
    plain[seed] = gilua({race, tostring(seed)}).stdout
    locked[seed] = gilua({race, tostring(seed), "lock"}).stdout
  end
  t.ok(distinct(plain) >= 2, "the literal race: 12 seeds, several outcomes", distinct(plain))
  t.ok(tonumber(plain[1]) and tonumber(plain[1]) < 4000, "... updates are lost", plain[1])
  t.is(gilua({race, "1"}).stdout, plain[1], "... and seed 1 replays its outcome")
  t.is(distinct(locked), 1, "with a Lock: one outcome")
  t.is(locked[1], "4000\n", "... which is 4000")
  os.remove(race)
end


-- Virtual time -----------------------------------------------------------------------------------

local SLEEPERS = [[
local sys, threading, time = require "sys", require "threading", require "time"
sys.setscheduler{mode = "random", seed = 5}
local t0, w0 = time.monotonic(), time.time()
local ts = {}
for i = 1, 4 do ts[i] = threading.Thread{target = function() time.sleep(3600) end}; ts[i]:start() end
for i = 1, 4 do ts[i]:join() end
print(time.monotonic() - t0, time.time() - w0, os.date("!%Y-%m-%d", w0 // 1))
]]
do
  local real, r
  for _ = 1, 2 do  -- once more if the machine was too busy
    local t0 = time.monotonic()
    r = t.run(SLEEPERS)
    real = time.monotonic() - t0
    if real < 1 then break end
  end
  t.is(r.stdout, "3600.0\t3600.0\t2000-01-01\n",
       "4 threads sleep 3600 s: monotonic and time advance 3600 s, from 2000-01-01")
  t.ok(real < 1, "... in under 1 s of real time", ("%.3f s"):format(real))
end

do
  local r = t.run([[
local sys, threading, time, queue = require "sys", require "threading", require "time", require "queue"
sys.setscheduler{mode = "random", seed = 3}
local lock, ev, q = threading.Lock(), threading.Event(), queue.Queue()
lock:acquire()
local th = threading.Thread{target = function() time.sleep(10); lock:release() end}
th:start()
local t0 = time.monotonic()
print(lock:acquire{timeout = 4}, time.monotonic() - t0)
print(ev:wait(2), time.monotonic() - t0)
local ok, e = pcall(q.get, q, true, 1.5)
print(ok, tostring(e):match("queue%.Empty"), time.monotonic() - t0)
print(lock:acquire{timeout = 100} ~= false, time.monotonic() - t0)
th:join()
]])
  t.is(r.stdout, "false\t4.0\nfalse\t6.0\nfalse\tqueue.Empty\t7.5\ntrue\t10.0\n",
       "timeouts of Lock, Event and Queue run out on the virtual clock, to the exact second")
end


-- Deadlock ---------------------------------------------------------------------------------------

local DEADLOCK = [[
local sys, threading = require "sys", require "threading"
sys.setscheduler{mode = "random", seed = tonumber(arg[1])}
local lock_a, lock_b = threading.Lock(), threading.Lock()
local function one() lock_a:acquire(); lock_b:acquire(); lock_b:release(); lock_a:release() end
local function two() lock_b:acquire(); lock_a:acquire(); lock_a:release(); lock_b:release() end
local a = threading.Thread{target = one, name = "Thread-A"}
local b = threading.Thread{target = two, name = "Thread-B"}
print("start lock_b = " .. tostring(lock_b):match("0x%x+"))
a:start(); b:start(); a:join(); b:join()
print("no deadlock")
]]
do
  local script = t.tmpname(".lua")
  local f = assert(io.open(script, "w"))
  f:write(DEADLOCK)
  f:close()
  local found
  for seed = 1, 100 do
    local r = gilua({script, tostring(seed)})
    if r.status ~= 0 then found = r; found.seed = seed; break end
  end
  t.ok(found ~= nil, "opposite-order locks: a seed among 100 deadlocks")
  if found then
    t.is(found.status, 3, "... exit status 3 (GILUA_EXIT_DEADLOCK)")
    t.like(found.stdout, "^start lock_b = 0x%x+\n$", "... after what was printed before")
    t.like(found.stderr, "^gilua: deadlock: every thread waits", "... the report says so")
    t.like(found.stderr, "Thread%-A %(ident %d+%) waits on lock_b %(a Lock at 0x%x+%), held by Thread%-B",
           "... Thread-A waits on lock_b (named as in the program), which Thread-B holds")
    t.like(found.stderr, "Thread%-B %(ident %d+%) waits on lock_a %(a Lock at 0x%x+%), held by Thread%-A",
           "... and Thread-B on lock_a, which Thread-A holds")
    local la = found.stderr:match("Thread%-A[^\n]*Lock at (0x%x+)")
    local lb = found.stderr:match("Thread%-B[^\n]*Lock at (0x%x+)")
    t.ok(la and lb and la ~= lb, "... two different locks", tostring(la) .. " " .. tostring(lb))
    t.ok(found.stderr:find(tostring(la), 1, true) and found.stdout:find("lock_b = " .. la, 1, true),
         "... at the address tostring() shows", found.stdout)
    t.like(found.stderr, "MainThread %(ident %d+%) waits on the end of Thread%-A",
           "... the main thread waits to join Thread-A")
    t.like(found.stderr, "%.lua:4: in ", "... with each thread's traceback")
    local again = gilua({script, tostring(found.seed)})
    t.is(again.status, 3, "... and its seed replays the deadlock")
  end
  os.remove(script)
end


do  -- the report names what the program waits on, as the program names it
  local r = t.run([[
local sys, threading, queue = require "sys", require "threading", require "queue"
sys.setscheduler{mode = "random", seed = 1}
local ev, cv, q, l = threading.Event(), threading.Condition(), queue.Queue(), threading.Lock()
local t1 = threading.Thread{target = function() ev:wait() end, name = "on-event"}
local t2 = threading.Thread{target = function() cv:acquire(); cv:wait(); cv:release() end, name = "on-cond"}
local t3 = threading.Thread{target = function() q:get() end, name = "on-queue"}
local t4 = threading.Thread{target = function() l:acquire(); l:acquire() end, name = "on-itself"}
t1:start(); t2:start(); t3:start(); t4:start()
t1:join()
]])
  t.is(r.status, 3, "an Event, a Condition, a Queue and a Lock taken twice: a deadlock")
  t.like(r.stderr, "\n  MainThread %(ident %d+%) waits on the end of on%-event\n", "... join: the thread joined")
  t.like(r.stderr, "\n  on%-event %(ident %d+%) waits on ev %(a threading%.Event%)\n", "... an Event by its name")
  t.like(r.stderr, "\n  on%-cond %(ident %d+%) waits on cv %(a threading%.Condition%)\n", "... a Condition by its name")
  t.like(r.stderr, "\n  on%-queue %(ident %d+%) waits on q %(a queue%.Queue%)\n", "... a Queue by its name")
  t.like(r.stderr, "\n  on%-itself %(ident %d+%) waits on l %(a Lock at 0x%x+%), held by itself\n",
         "... a Lock its own thread holds")
end


do  -- --gil-stats under the scheduler: no interval to show, the draws decide
  local r = t.run("local th = require('threading').Thread{target = function() end}; th:start(); th:join()",
                  { flags = { "--sched=random", "--seed=1", "--gil-stats" } })
  t.like(r.stderr, "policy sched %(the scheduler's draws decide every switch%)",
         "--gil-stats names the scheduler, not a check interval it does not use")
end


-- What it refuses, what it says ------------------------------------------------------------------

t.is(sys.getscheduler().mode, "off", "getscheduler: off by default")
t.raises(function() sys.setscheduler{mode = "chaos"} end, "unknown mode 'chaos'",
         "setscheduler: an unknown mode is a ValueError naming it")
t.raises(function() sys.setscheduler{mode = "random", seed = 1.5} end, "'seed' must be an integer",
         "setscheduler: a seed that is not an integer is a TypeError")
t.raises(function() sys.setscheduler() end, "table expected",
         "setscheduler: the options table is required")
do
  local ev = threading.Event()
  local th = threading.Thread{target = function() ev:wait() end}
  th:start()
  t.raises(function() sys.setscheduler{mode = "random", seed = 1} end,
           "threads are running already", "setscheduler: refused once a thread runs")
  ev:set()
  th:join()
end

do
  local r = t.run([[
local sys = require "sys"
sys.setscheduler{mode = "random", seed = 42}
local s = sys.getscheduler()
print(s.mode, s.seed, sys.getgilpolicy())
print(pcall(sys.setgilpolicy, "fifo"))
sys.setscheduler{mode = "off"}
print(sys.getscheduler().mode, sys.getgilpolicy())
]])
  t.like(r.stdout, "^random\t42\tsched\n", "getscheduler gives mode and seed; the policy shows 'sched'")
  t.like(r.stdout, "\nfalse\t[^\n]*deterministic scheduler is on", "setgilpolicy is refused meanwhile")
  t.like(r.stdout, "\noff\tnew\n$", "mode off gives the GIL its policy back")
end

do  -- prints from threads are calls outside that come back at once: still replayable
  local code = [[
local sys, threading = require "sys", require "threading"
sys.setscheduler{mode = "random", seed = 9}
local ts = {}
for i = 1, 3 do
  ts[i] = threading.Thread{target = function() for j = 1, 30 do io.write(i, ":", j, " ") end end}
  ts[i]:start()
end
for i = 1, 3 do ts[i]:join() end
print()
]]
  local a, b = t.run(code), t.run(code)
  t.ok(a.stdout == b.stdout and #a.stdout > 200, "threads that write: the same output twice")
  t.is(a.stderr, "", "... and determinism holds (nothing said)")
end

do  -- a child process beside a thread that computes: said once
  local r = t.run([[
local sys, threading = require "sys", require "threading"
sys.setscheduler{mode = "random", seed = 2}
local th = threading.Thread{target = function() local x = 0 for i = 1, 2e6 do x = x + i end end}
th:start()
os.execute("sleep 0.3")
os.execute("sleep 0.3")
th:join()
print("ok")
]])
  t.is(r.stdout, "ok\n", "a child process under the scheduler runs to its end")
  local _, n = r.stderr:gsub("gilua: sched: determinism lost", "")
  t.is(n, 1, "... and stderr says once that the run may not replay")
end

do  -- asyncio's loop: timers wait on the virtual clock, a thread wakes it
  local r = t.run([[
local sys, asyncio, time, threading = require "sys", require "asyncio", require "time", require "threading"
sys.setscheduler{mode = "random", seed = 4}
local t0 = time.monotonic()
asyncio.run(asyncio.async(function()
  local loop = asyncio.get_running_loop()
  local fut = loop:create_future()
  local th = threading.Thread{target = function()
    time.sleep(30)
    loop:call_soon_threadsafe(function() fut:set_result("from a thread") end)
  end}
  th:start()
  asyncio.sleep(600):await()
  print(fut:await(), time.monotonic() - t0)
  th:join()
end)())
]])
  t.is(r.stdout, "from a thread\t600.0\n",
       "asyncio under the scheduler: sleep(600) on the virtual clock, a thread's call_soon_threadsafe arrives")
  t.is(r.status, 0, "... and the run ends")
end

t.done_testing()
