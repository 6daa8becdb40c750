#!/usr/bin/env gilua
-- threading.Event: set, clear, is_set, wait(timeout) returning the flag,
-- and a thread blocked in wait does not stop the others.
local t = require "tap"
local threading = require "threading"
local time = require "time"
local util = require "support.util"

do
  local e = threading.Event()
  t.is(e:is_set(), false, "a new Event is not set")
  local dt, r = util.timed(e.wait, e, 0.2)
  t.is(r, false, "wait(0.2) on an unset Event returns false")
  t.between(dt, 0.17, 2, "... after about its timeout")
  dt, r = util.timed(e.wait, e, {timeout = 0.1})
  t.is(r, false, "wait{timeout = 0.1} returns false")
  t.between(dt, 0.08, 2, "... after about its timeout")
  e:set()
  t.is(e:is_set(), true, "set() sets the flag")
  dt, r = util.timed(e.wait, e, 5)
  t.is(r, true, "wait on a set Event returns true")
  t.ok(dt < 0.1, "... at once")
  t.is(e:wait(), true, "wait() without timeout on a set Event returns true")
  e:clear()
  t.is(e:is_set(), false, "clear() clears the flag")
  t.is(e:wait(0), false, "wait(0) on a cleared Event returns false")
end

-- set() from another thread wakes every waiter ----------------------------------------------
do
  local e = threading.Event()
  local results = {}
  local ths = {}
  for i = 1, 4 do
    ths[i] = threading.Thread{ target = function() results[i] = e:wait(5) end }
    ths[i]:start()
  end
  time.sleep(0.1)
  local alive = 0
  for i = 1, 4 do if ths[i]:is_alive() then alive = alive + 1 end end
  t.is(alive, 4, "four threads are waiting")
  e:set()
  for i = 1, 4 do ths[i]:join(5) end
  local all = true
  for i = 1, 4 do all = all and results[i] == true end
  t.ok(all, "set() woke all four waiters, each returning true")
end

-- A thread blocked in Event:wait does not stop others ------------------------------------------
do
  local e = threading.Event()
  local waiter = threading.Thread{ name = "waiter", target = function() e:wait() end }
  waiter:start()
  time.sleep(0.05)
  -- main and a worker do CPU work while the waiter is blocked without timeout
  local N = util.calibrate(0.1)
  local worker_done = false
  local worker = threading.Thread{ target = function() util.spin(N); worker_done = true end }
  local t0 = util.clock()
  worker:start()
  util.spin(N)
  worker:join(10)
  local dt = util.clock() - t0
  t.ok(worker_done, "a worker thread ran to completion while another waits on an Event")
  t.ok(dt < 3, "... in a normal time (" .. string.format("%.2f", dt) .. " s)")
  t.is(waiter:is_alive(), true, "the waiter is still waiting")
  e:set()
  waiter:join(5)
  t.is(waiter:is_alive(), false, "the waiter woke up once the Event was set")

  -- and the main thread blocked in wait lets the others run
  local e2 = threading.Event()
  local ticks, dt2, r = util.ticks_during(e2.wait, e2, 0.3)
  t.is(r, false, "wait(0.3) timed out")
  t.between(dt2, 0.27, 2, "wait(0.3) honoured its timeout")
  t.ok(ticks >= 5, "another thread ran while main waited on an Event (" .. ticks .. " ticks)")
end

-- a waiter woken by set() right after a timeout-free wait started; clear between waits
do
  local e = threading.Event()
  local woke_at
  local t0 = util.clock()
  local th = threading.Thread{ target = function() e:wait(); woke_at = util.clock() end }
  th:start()
  time.sleep(0.15)
  e:set()
  th:join(5)
  t.ok(woke_at ~= nil and woke_at - t0 >= 0.12, "the waiter woke when the Event was set, not before")
end

t.like(tostring(threading.Event()), "Event", "tostring names the Event")

t.done_testing()
