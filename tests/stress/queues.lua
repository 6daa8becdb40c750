#!/usr/bin/env gilua
--[[
stress/queues.lua: millions of items through every kind of queue, several
producers and several consumers each, and every item received exactly once.

Producer k of P sends the integers k, k + P, k + 2P, ... up to N, so the N
items are 1..N, each sent once. Every consumer sums what it received: a
count, the plain sum and a sum of a mixed hash of each item (wrapping
integer arithmetic). A lost item, a duplicated one or a damaged one changes
at least one of the three; a loss and a duplicate that cancel out would have
to agree in both sums, which no simple bug does.

The shares (STRESS_SCALE multiplies them; 1 by default, 10 million items in
all): queue.Queue between threads 5M, multiprocessing.Queue 2.5M,
multiprocessing.JoinableQueue 2M (with task_done and join), a manager's
Queue 0.5M (every put and get is a round trip to the manager's server
process, about 10x slower a item than a process queue: its share is the
smallest so that the whole runs in a few minutes on two cores).
]]
local t = require "tap"
local threading = require "threading"
local queue = require "queue"
local mp = require "multiprocessing"
local time = require "time"

local SCALE = tonumber(os.getenv("STRESS_SCALE") or "") or 1

local function mix(x)
  x = x * 0x9E3779B97F4A7C15
  x = x ~ (x >> 31)
  return x * 0xBF58476D1CE4E5B9
end

-- What 1..n should give: count, sum, sum of mix.
local function expected(n)
  local h = 0
  for i = 1, n do h = h + mix(i) end
  return n, n * (n + 1) // 2, h
end

local function produce(q, k, P, N)
  for i = k, N, P do q:put(i) end
end

-- Takes items until the nil sentinel; task_done after each when asked.
local function consume(q, done)
  local c, s, h = 0, 0, 0
  while true do
    local v = q:get()
    if done then q:task_done() end
    if v == nil then break end
    c, s, h = c + 1, s + v, h + mix(v)
  end
  return c, s, h
end

local rates = {}

--[[ run(name, N, P, C, opts): opts.queue is the queue, opts.start(fn)
starts fn in a new thread or process and returns what opts.join waits for,
opts.results a queue the consumers report to, opts.joinable whether the
queue is a JoinableQueue. ]]
local function run(name, N, P, C, o)
  local q, res = o.queue, o.results
  local t0 = time.monotonic()
  local consumers, producers = {}, {}
  for i = 1, C do
    consumers[i] = o.start(function()
      local c, s, h = consume(q, o.joinable)
      res:put({ c, s, h, i })
    end)
  end
  for k = 1, P do
    producers[k] = o.start(function() produce(q, k, P, N) end)
  end
  for k = 1, P do o.join(producers[k]) end
  if o.joinable then
    q:join()       -- every item taken and marked done
    t.ok(true, name .. ": join() returned once every item was done")
  end
  for _ = 1, C do q:put(nil) end
  local c, s, h, reports = 0, 0, 0, {}
  for _ = 1, C do
    local r = res:get()
    c, s, h = c + r[1], s + r[2], h + r[3]
    reports[#reports + 1] = r[1]
  end
  for i = 1, C do o.join(consumers[i]) end
  local dt = time.monotonic() - t0
  local ec, es, eh = expected(N)
  t.is(c, ec, ("%s: %d items received (%d producers, %d consumers)"):format(name, N, P, C))
  t.is(s, es, name .. ": sum of the items")
  t.is(h, eh, name .. ": sum of their hashes (no item twice, none lost)")
  local busy = 0
  for _, n in ipairs(reports) do if n > 0 then busy = busy + 1 end end
  t.ok(busy >= 2, name .. ": the items were shared among consumers (" ..
       table.concat(reports, " ") .. ")")
  rates[#rates + 1] = { name, N, dt }
  t.diag(("%-32s %9d items %7.2f s %10.0f items/s"):format(name, N, dt, N / dt))
  return c
end

local total = 0

-- Threads: 4 producers, 4 consumers, a bounded queue (puts block too).
do
  local function start(fn)
    local th = threading.Thread{ target = fn }
    th:start()
    return th
  end
  local function join(th) th:join() end
  total = total + run("queue.Queue (threads)", math.floor(5e6 * SCALE), 4, 4,
    { queue = queue.Queue(1000), results = queue.Queue(), start = start, join = join })
end

local function pstart(fn)
  local p = mp.Process{ target = fn }
  p:start()
  return p
end
local function pjoin(p)
  p:join()
  if p.exitcode ~= 0 then t.diag("process " .. p.pid .. " exit code " .. tostring(p.exitcode)) end
end

do
  total = total + run("multiprocessing.Queue", math.floor(2.5e6 * SCALE), 4, 4,
    { queue = mp.Queue(1000), results = mp.Queue(), start = pstart, join = pjoin })
end

do
  total = total + run("multiprocessing.JoinableQueue", math.floor(2e6 * SCALE), 3, 3,
    { queue = mp.JoinableQueue(), results = mp.Queue(), start = pstart, join = pjoin,
      joinable = true })
end

do
  local manager <close> = mp.Manager()
  total = total + run("Manager().Queue", math.floor(5e5 * SCALE), 3, 3,
    { queue = manager:Queue(), results = mp.Queue(), start = pstart, join = pjoin })
end

local secs = 0
for _, r in ipairs(rates) do secs = secs + r[3] end
t.diag(("%-32s %9d items %7.2f s %10.0f items/s"):format("all queues", total, secs, total / secs))
t.done_testing()
