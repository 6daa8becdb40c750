-- samples/gil/policies.lua: the GIL lab. The same workloads under each of
-- gilua's GIL policies, in one process, and one table of what changes.
--
--     gilua samples/gil/policies.lua [--quick] [--timelines DIR] [policy ...]
--
-- The policies (sys.setgilpolicy switches them at run time; docs/gil.md
-- tells their history and rules):
--   new          CPython 3.2+: a waiter asks the holder to let go after the
--                switch interval (5 ms); forced switching. The default.
--   old          CPython 3.1 and before: the holder lets go every 100 VM
--                instructions and at once tries to take the GIL back.
--   io-priority  new, but a thread back from a blocking call asks at once
--                and goes first (bpo-7946).
--   fifo         new, but the GIL goes to the waiters in arrival order.
--
-- The columns:
--   thr/seq     2 CPU-bound threads, over the same work one call after
--               the other (with a second, idle thread alive, so that old
--               counts instructions in both runs): about 1 under a fair
--               GIL; Beazley's "two threads are slower" under old.
--   1core       the same threads pinned to one core (taskset), over the
--               same sequence: old's fight is a multicore effect.
--   wake p50/p99  how late an I/O-bound thread (1 ms sleeps) gets back to
--               running beside a CPU-bound thread: the convoy effect.
--   cpu cost    the share of its time the CPU-bound thread waits for the
--               GIL beside it (cpu_slower in the key=value lines: how much
--               slower its loop ran than alone, which a busy machine
--               blurs).
--   pingpong    round trips per second between two threads over a
--               multiprocessing.Pipe, beside a CPU-bound thread.
--   race        what is left of 4 x 100,000 increments by the course's
--               literal race, `temp = compteur; compteur = temp + 1`
--               (400000: no update lost), the smallest of 3 runs; with a
--               Lock (+Lock), always 400000.
--   share       4 CPU-bound threads for 1 s: the largest share of GIL
--               time over the smallest (1.00: even).
--   sw/s forced/s  switches and forced switches per second in that run.
--
-- --quick shortens every run (for the test suite); --timelines DIR writes
-- DIR/<policy>.html, a timeline of 2 CPU-bound threads and an I/O-bound
-- one under each policy, and DIR/all.html, the same threads while the
-- policy changes every 60 ms.
local threading = require "threading"
local multiprocessing = require "multiprocessing"
local time = require "time"
local gil = require "gil"
local sys = require "sys"

local clock = time.perf_counter

local function count(n)
  local c = 0
  for i = 1, n do c = c + i % 3 end
  return c
end

-- Loop turns for about 'secs' of CPU here, measured alone.
local function calibrate(secs)
  local n = 100000
  while true do
    local t0 = clock()
    count(n)
    local dt = clock() - t0
    if dt > 0.05 then return math.floor(n * secs / dt) end
    n = n * 2
  end
end

local function sorted(xs)
  local s = table.move(xs, 1, #xs, 1, {})
  table.sort(s)
  return s
end

local function quantile(xs, q)
  local s = sorted(xs)
  if #s == 0 then return 0 / 0 end
  return s[math.max(1, math.ceil(q * #s))]
end

-- Runs fn with a second thread alive and blocked.
local function with_idle_thread(fn)
  local ev = threading.Event()
  local idle = threading.Thread{name = "idle", target = function() ev:wait() end}
  idle:start()
  local r = table.pack(fn())
  ev:set()
  idle:join()
  return table.unpack(r, 1, r.n)
end

local function in_threads(k, fn, ...)
  local args = {...}
  local ths = {}
  for i = 1, k do
    ths[i] = threading.Thread{name = "cpu-" .. i, target = fn, args = args}
  end
  local t0 = clock()
  for i = 1, k do ths[i]:start() end
  for i = 1, k do ths[i]:join() end
  return clock() - t0
end


-- 1. Two CPU-bound threads against the same work in sequence.
local function cpu(n)
  local seq = with_idle_thread(function()
    local t0 = clock()
    count(n); count(n)
    return clock() - t0
  end)
  return seq, in_threads(2, count, n)
end

-- The same, in a child gilua pinned to one core; nil if that cannot be.
local function cpu_one_core(policy, n)
  local gilua, script = arg and arg[-1], arg and arg[0]
  if not (gilua and script) then return nil end
  local p = io.popen(("taskset -c 0 %q %q --pinned %s %d 2>/dev/null")
                     :format(gilua, script, policy, n))
  if not p then return nil end
  local out = p:read("a")
  p:close()
  local seq, thr = out:match("seq=([%d.]+) threads=([%d.]+)")
  return seq and tonumber(thr) / tonumber(seq)
end


-- 2. The convoy: an I/O-bound thread beside a CPU-bound one. Returns the
-- wake-up latencies, the share of its time the CPU-bound thread spent
-- waiting for the GIL, and how much slower it ran than alone.
local function spinner(state)
  return threading.Thread{name = "cpu", target = function()
    local n = 0
    while not state.stop do n = n + 1 end
    state.n = n
  end}
end

local function cpu_rate(beside)
  local state = {stop = false}
  local th = spinner(state)
  local t0 = clock()
  th:start()
  local r = beside()
  state.stop = true
  th:join()
  return state.n / (clock() - t0), r
end

local function convoy(requests, limit)
  local WAIT = 0.001
  -- the best of two runs alone: a busy machine only ever slows it down
  local function nap() time.sleep(0.25) end
  local alone = math.max((cpu_rate(nap)), (cpu_rate(nap)))
  local cpu_wait
  local rate, lat = cpu_rate(function()
    local lat = {}
    gil.reset_stats()
    local io = threading.Thread{name = "io", target = function()
      local t0 = clock()
      for i = 1, requests do
        local before = clock()
        time.sleep(WAIT)                   -- a blocking call, GIL released
        lat[i] = clock() - before - WAIT
        if clock() - t0 > limit then break end
      end
    end}
    io:start(); io:join()
    for _, th in ipairs(gil.stats().threads) do
      if th.name == "cpu" then
        cpu_wait = th.wait_time / (th.wait_time + th.hold_time)
      end
    end
    return lat
  end)
  return lat, cpu_wait, 1 - rate / alone
end


-- 3. Ping-pong over a pipe between two threads, beside a CPU-bound one.
local function pingpong(secs)
  local state = {stop = false}
  local cpu_th = spinner(state)
  cpu_th:start()
  local a, b = multiprocessing.Pipe()
  local trips = 0
  local echo = threading.Thread{name = "pong", target = function()
    while true do
      local v = b:recv()
      if v == nil then break end
      b:send(v)
    end
  end}
  echo:start()
  local t0 = clock()
  local pinger = threading.Thread{name = "ping", target = function()
    while clock() - t0 < secs do
      a:send(trips)
      a:recv()
      trips = trips + 1
    end
    a:send(nil)
  end}
  pinger:start(); pinger:join(); echo:join()
  local dt = clock() - t0
  state.stop = true
  cpu_th:join()
  a:close(); b:close()
  return trips / dt
end


-- 4. The course's race, literally: no call between the read and the write.
-- The threads start together (an Event), or each could be done before the
-- next one is running.
local function race(lock)
  local go = threading.Event()
  compteur = 0
  local th = threading.Thread{target = function() time.sleep(0.01); go:set() end}
  th:start()
  in_threads(4, lock and function()
    go:wait()
    for _ = 1, 100000 do
      lock:acquire()
      local temp = compteur
      compteur = temp + 1
      lock:release()
    end
  end or function()
    go:wait()
    for _ = 1, 100000 do
      local temp = compteur
      compteur = temp + 1
    end
  end)
  th:join()
  return compteur
end


-- 5. Four CPU-bound threads for 'secs': largest over smallest GIL share,
-- switches and forced switches per second. The threads start together
-- (an Event) and the figures count from then: a thread started later has
-- had less time to run, whatever the policy. (Under fifo, started one
-- after the other, the 4th ran some 60 ms less than the 1st: every
-- start() has the starting thread wait a round to get the GIL back.)
-- What is left is the window's edge: 1 s is some 50 turns a thread, and
-- the round under way at the end gives some threads one turn more (2%).
local function shares(secs)
  local go, state = threading.Event(), {stop = false}
  local ths = {}
  for i = 1, 4 do
    ths[i] = threading.Thread{name = "share-" .. i, target = function()
      go:wait()
      local n = 0
      while not state.stop do n = n + 1 end
    end}
    ths[i]:start()
  end
  gil.reset_stats()
  go:set()
  time.sleep(secs)
  state.stop = true
  for i = 1, 4 do ths[i]:join() end
  local st = gil.stats()
  local lo, hi = math.huge, 0
  for _, th in ipairs(st.threads) do
    if th.name:match("^share%-") then
      lo = math.min(lo, th.hold_time)
      hi = math.max(hi, th.hold_time)
    end
  end
  return hi / lo, st.switches / st.elapsed, st.forced_switches / st.elapsed
end


-- A timeline of 2 CPU-bound threads and an I/O-bound one, 'secs' under
-- each of 'policies' in turn.
local function timeline(path, secs, policies)
  local state = {stop = false}
  sys.setgilpolicy(policies[1])
  gil.trace_start(path)
  local ths = {}
  for i = 1, 2 do
    ths[i] = threading.Thread{name = "cpu-" .. i, target = function()
      local n = 0
      while not state.stop do n = n + 1 end
    end}
  end
  ths[3] = threading.Thread{name = "io", target = function()
    while not state.stop do time.sleep(0.001) end
  end}
  for _, th in ipairs(ths) do th:start() end
  for i, p in ipairs(policies) do
    sys.setgilpolicy(p)
    time.sleep(i == 1 and secs + 0.01 or secs)
  end
  state.stop = true
  for _, th in ipairs(ths) do th:join() end
  gil.trace_stop()
end


-- The pinned child: only the CPU part, printed for the parent.
if arg and arg[1] == "--pinned" then
  sys.setgilpolicy(arg[2])
  local seq, thr = cpu(tonumber(arg[3]))
  print(("seq=%.6f threads=%.6f"):format(seq, thr))
  return
end

local quick, dir, chosen = false, nil, {}
do
  local i = 1
  while arg and arg[i] do
    if arg[i] == "--quick" then quick = true
    elseif arg[i] == "--timelines" then i = i + 1; dir = arg[i]
    else chosen[#chosen + 1] = arg[i] end
    i = i + 1
  end
end
if #chosen == 0 then chosen = {"new", "old", "io-priority", "fifo"} end

local S = quick and 0.3 or 1                -- scale of every run
local N = calibrate(0.4 * S)
local rows = {}
for _, policy in ipairs(chosen) do
  sys.setgilpolicy(policy)                  -- ValueError for a bad name
  local r = {policy = policy}
  local seq, thr = cpu(N)
  r.thr = thr / seq
  r.core1 = cpu_one_core(policy, N)
  local lat, cost, slower = convoy(quick and 60 or 200, 4 * S)
  r.p50, r.p99, r.cost, r.slower = quantile(lat, 0.5), quantile(lat, 0.99),
                                   cost, slower
  r.pingpong = pingpong(S)
  -- where a check falls is up to the OS: the worst of three runs
  r.race = math.min(race(), race(), race())
  r.race_lock = race(threading.Lock())
  r.share, r.sw, r.forced = shares(S)
  rows[#rows + 1] = r
  if dir then timeline(("%s/%s.html"):format(dir, policy), 0.25, {policy}) end
end
if dir then timeline(dir .. "/all.html", 0.06, chosen) end
sys.setgilpolicy("new")

local function opt(fmt, v) return v and fmt:format(v) or "-" end
print(("GIL policies, %d CPUs, switch interval %.1f ms, check interval %d")
      :format(os.cpu_count(), sys.getswitchinterval() * 1e3,
              sys.getcheckinterval()))
print(("%-12s %7s %6s %9s %9s %8s %9s %7s %7s %6s %6s %8s")
      :format("policy", "thr/seq", "1core", "wake p50", "wake p99", "cpu cost",
              "pingpong", "race", "+Lock", "share", "sw/s", "forced/s"))
for _, r in ipairs(rows) do
  print(("%-12s %7.2f %6s %7.3fms %7.3fms %7.1f%% %7.0f/s %7d %7d %6.2f %6.0f %8.0f")
        :format(r.policy, r.thr, opt("%.2f", r.core1), r.p50 * 1e3,
                r.p99 * 1e3, r.cost * 100, r.pingpong, r.race, r.race_lock,
                r.share, r.sw, r.forced))
end
-- The same figures as key=value lines, for scripts.
for _, r in ipairs(rows) do
  local k = r.policy:gsub("%-", "_")
  print(("%s: thr_seq=%.3f core1=%s p50_ms=%.4f p99_ms=%.4f cpu_cost=%.4f "
         .. "cpu_slower=%.4f pingpong=%.1f race=%d race_lock=%d share=%.3f "
         .. "sw=%.1f forced=%.1f")
        :format(k, r.thr, opt("%.3f", r.core1), r.p50 * 1e3, r.p99 * 1e3,
                r.cost, r.slower, r.pingpong, r.race, r.race_lock, r.share, r.sw,
                r.forced))
end
if dir then print("timelines: " .. dir .. "/<policy>.html, " .. dir .. "/all.html") end
