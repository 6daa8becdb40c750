#!/usr/bin/env gilua
-- Coroutines under the GIL: CPU-bound code inside a coroutine is still
-- preempted; coroutines keep Lua's semantics; a coroutine may move between
-- threads.
local t = require "tap"
local threading = require "threading"
local time = require "time"
local gil = require "gil"
local util = require "support.util"

local N = util.calibrate(0.3)

-- A CPU-bound thread ticking; the main thread runs CPU-bound code inside a
-- coroutine (and a nested one). If the drop request went to the main
-- thread's own state instead of the coroutine that is running, the ticker
-- would never get the GIL during that loop.
local function preempted_in(label, run)
  local ticks, stop = 0, false
  local ticker = threading.Thread{ name = "ticker", target = function()
    while not stop do ticks = ticks + 1 end
  end }
  ticker:start()
  time.sleep(0.02)                 -- let the ticker get going
  gil.reset_stats()
  local during = run(function()     -- called inside the coroutine(s)
    -- 0.3 s of CPU-bound loops, by the clock: a calibration made while
    -- the host was busy would make a fixed count too short
    local before, t0 = ticks, util.clock()
    repeat util.spin(N // 10) until util.clock() - t0 >= 0.3
    return ticks - before
  end)
  local forced = gil.stats().forced_switches
  stop = true
  ticker:join()
  t.ok(during and during > 0, label .. ": another thread ran during the loop (" ..
       tostring(during) .. " ticks)")
  t.ok(forced >= 5, label .. ": forced switches happened (" .. forced .. ")")
end

preempted_in("coroutine.wrap", function(work)
  return coroutine.wrap(work)()
end)

preempted_in("coroutine.resume", function(work)
  local co = coroutine.create(work)
  local ok, r = coroutine.resume(co)
  return ok and r
end)

preempted_in("nested coroutines", function(work)
  return coroutine.wrap(function()
    return coroutine.wrap(function()
      return coroutine.wrap(work)()
    end)()
  end)()
end)

preempted_in("a coroutine that yields in between", function(work)
  local co = coroutine.wrap(function()
    coroutine.yield("first")
    return work()
  end)
  co()
  return co()
end)

-- CPU work inside a coroutine in a non-main thread, while main spins too
do
  local during
  local th = threading.Thread{ target = function()
    during = coroutine.wrap(function()
      local c0 = util.clock()
      local n = 0
      while util.clock() - c0 < 0.3 do n = n + 1 end
      return n
    end)()
  end }
  local main_ticks = 0
  th:start()
  while th:is_alive() do main_ticks = main_ticks + 1 end
  th:join()
  t.ok(during and during > 0, "a thread's coroutine ran")
  t.ok(main_ticks > 0, "main kept running while a thread's coroutine was CPU-bound")
end

-- plain coroutine semantics are unchanged ---------------------------------------------
do
  local co = coroutine.create(function(a, b)
    local c = coroutine.yield(a + b)
    local d, e = coroutine.yield(c * 2)
    return d + e, "end"
  end)
  local r = table.pack(coroutine.resume(co, 1, 2))
  t.ok(r[1] and r[2] == 3, "resume passes arguments, yield passes values out")
  r = table.pack(coroutine.resume(co, 10))
  t.ok(r[1] and r[2] == 20, "resume passes values into yield")
  r = table.pack(coroutine.resume(co, 4, 5))
  t.ok(r[1] and r[2] == 9 and r[3] == "end", "return values")
  t.is(coroutine.status(co), "dead", "status dead")
  local ok, err = coroutine.resume(co)
  t.ok(not ok and tostring(err):find("dead"), "resuming a dead coroutine fails")

  local w = coroutine.wrap(function() error(ValueError("in co")) end)
  local ok2, err2 = pcall(w)
  t.ok(not ok2 and ValueError:is(err2), "an error in wrap propagates as the same object")

  local inside_running, ismain
  coroutine.wrap(function() inside_running, ismain = coroutine.running() end)()
  t.ok(type(inside_running) == "thread" and ismain == false, "coroutine.running inside a coroutine")
  local _, m = coroutine.running()
  t.is(m, true, "coroutine.running in main")
  t.is(coroutine.isyieldable(), false, "main is not yieldable")

  local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
  local s = gen() + gen() + gen()
  t.is(s, 6, "a generator")
  local co2 = coroutine.create(function() coroutine.yield() end)
  coroutine.resume(co2)
  t.ok(coroutine.close(co2), "coroutine.close on a suspended coroutine")
  t.is(coroutine.status(co2), "dead", "closed coroutine is dead")
end

-- sleeping inside a coroutine releases the GIL -----------------------------------------
do
  local ticks, dt = util.ticks_during(function()
    coroutine.wrap(function() time.sleep(0.3) end)()
  end)
  t.between(dt, 0.27, 2, "sleep(0.3) inside a coroutine")
  t.ok(ticks >= 5, "another thread ran while a coroutine slept (" .. ticks .. " ticks)")
end

-- a coroutine created in one thread, resumed in others -----------------------------------------
do
  local co = coroutine.create(function()
    local idents = {}
    for _ = 1, 3 do
      idents[#idents + 1] = threading.current_thread().name
      local s = util.spin(N // 10)
      coroutine.yield(s)
    end
    return idents
  end)
  local results = {}
  for i = 1, 3 do
    local th = threading.Thread{ name = "mover" .. i, target = function()
      local ok, r = coroutine.resume(co)
      results[i] = ok and r
    end }
    th:start(); th:join()
  end
  local ok, idents = coroutine.resume(co)
  t.ok(ok and type(idents) == "table" and #idents == 3, "a coroutine resumed from three threads in turn")
  local distinct = ok and idents[1] == "mover1" and idents[2] == "mover2" and idents[3] == "mover3"
  t.ok(distinct, "... ran in each of those threads")
  t.ok(results[1] and results[2] and results[3], "... and yielded to each")

  -- and a preemption while a moved coroutine runs does not break anything
  preempted_in("a coroutine that moved threads", function(work)
    local moving = coroutine.create(function()
      coroutine.yield()
      return work()
    end)
    local th = threading.Thread{ target = function() coroutine.resume(moving) end }
    th:start(); th:join()
    local ok2, r = coroutine.resume(moving)
    return ok2 and r
  end)
end

t.done_testing()
