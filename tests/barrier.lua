#!/usr/bin/env gilua
-- threading.Barrier(parties, action, timeout): arrival indices, action,
-- n_waiting, broken, abort, reset, timeouts, BrokenBarrierError.
local t = require "tap"
local threading = require "threading"
local time = require "time"
local util = require "support.util"

local BrokenBarrierError = threading.BrokenBarrierError

-- run `n` threads each calling fn(i); returns the threads (joined) and results
local function crowd(n, fn)
  local ths, res, errs = {}, {}, {}
  for i = 1, n do
    ths[i] = threading.Thread{ target = function()
      local ok, r = pcall(fn, i)
      if ok then res[i] = r else errs[i] = r end
    end }
    ths[i]:start()
  end
  for i = 1, n do ths[i]:join(10) end
  return res, errs, ths
end

-- wait returns each arrival index 0 .. parties-1 once; the action runs once
do
  local actions, action_thread = 0, nil
  local b = threading.Barrier(3, function()
    actions = actions + 1
    action_thread = threading.current_thread().name
  end)
  t.is(b.parties, 3, "parties")
  t.is(b.n_waiting, 0, "nobody waiting at first")
  t.is(b.broken, false, "not broken at first")
  local res, errs = crowd(3, function() return b:wait(5) end)
  local seen = {}
  for i = 1, 3 do if res[i] ~= nil then seen[res[i]] = (seen[res[i]] or 0) + 1 end end
  t.ok(seen[0] == 1 and seen[1] == 1 and seen[2] == 1,
       "the three waits returned 0, 1 and 2, once each")
  t.is(next(errs), nil, "no errors")
  t.is(actions, 1, "the action ran once")
  t.ok(action_thread ~= nil and action_thread:find("^Thread%-"), "in one of the waiting threads")
  -- the barrier can be used again
  res = crowd(3, function() return b:wait(5) end)
  local sum = (res[1] or 9) + (res[2] or 9) + (res[3] or 9)
  t.is(sum, 3, "a second round works (indices again 0 + 1 + 2)")
  t.is(actions, 2, "the action ran once more")
end

-- the threads really wait for each other
do
  local b = threading.Barrier(4)
  local arrived, passed_early = 0, false
  local ths = {}
  for i = 1, 4 do
    ths[i] = threading.Thread{ target = function()
      time.sleep(0.03 * i)
      arrived = arrived + 1
      b:wait(5)
      if arrived < 4 then passed_early = true end
    end }
    ths[i]:start()
  end
  for i = 1, 4 do ths[i]:join(10) end
  t.is(passed_early, false, "no thread passed before all four arrived")
end

-- n_waiting, abort --------------------------------------------------------------------------
do
  local b = threading.Barrier(3)
  local errs = {}
  local ths = {}
  for i = 1, 2 do
    ths[i] = threading.Thread{ target = function()
      local ok, e = pcall(b.wait, b)
      errs[i] = ok and "no error" or e
    end }
    ths[i]:start()
  end
  t.ok(util.wait_until(function() return b.n_waiting == 2 end), "n_waiting is 2 with two threads waiting")
  b:abort()
  for i = 1, 2 do ths[i]:join(5) end
  t.ok(BrokenBarrierError:is(errs[1]) and BrokenBarrierError:is(errs[2]),
       "abort(): the waiting threads get BrokenBarrierError")
  t.is(b.broken, true, "broken after abort")
  t.raises(function() b:wait(1) end, BrokenBarrierError, "waiting on a broken barrier: BrokenBarrierError")
  b:reset()
  t.is(b.broken, false, "reset() mends a broken barrier")
  local res = crowd(3, function() return b:wait(5) end)
  t.ok(res[1] and res[2] and res[3], "the reset barrier works again")
end

-- reset while threads wait: they get BrokenBarrierError --------------------------------------
do
  local b = threading.Barrier(2)
  local err
  local th = threading.Thread{ target = function()
    local ok, e = pcall(b.wait, b)
    err = ok and "no error" or e
  end }
  th:start()
  t.ok(util.wait_until(function() return b.n_waiting == 1 end), "one thread waiting")
  b:reset()
  th:join(5)
  t.ok(BrokenBarrierError:is(err), "reset() with a waiter: it gets BrokenBarrierError")
  t.is(b.broken, false, "not broken after reset")
  local res = crowd(2, function() return b:wait(5) end)
  t.ok(res[1] and res[2], "usable after reset")
end

-- timeouts -------------------------------------------------------------------------------------
do
  local b = threading.Barrier(2)
  local ticks, dt, ok, err = util.ticks_during(pcall, b.wait, b, 0.3)
  t.ok(not ok and BrokenBarrierError:is(err), "wait(0.3) alone: BrokenBarrierError")
  t.between(dt, 0.27, 2, "... after about the timeout")
  t.ok(ticks >= 5, "another thread ran during the barrier wait (" .. ticks .. " ticks)")
  t.is(b.broken, true, "a timeout breaks the barrier")

  local b2 = threading.Barrier(2, nil, 0.2)     -- default timeout
  local dt2, ok2, err2 = util.timed(pcall, b2.wait, b2)
  t.ok(not ok2 and BrokenBarrierError:is(err2), "the constructor's timeout applies")
  t.between(dt2, 0.17, 2, "... after about that timeout")
  local b3 = threading.Barrier{ parties = 2, timeout = 0.1 }
  local ok3, err3 = pcall(b3.wait, b3)
  t.ok(not ok3 and BrokenBarrierError:is(err3), "Barrier{parties =, timeout =} form")
end

-- an action that raises breaks the barrier ---------------------------------------------------------
do
  local b = threading.Barrier(2, function() error(ValueError("in action")) end)
  local res, errs = crowd(2, function() return b:wait(5) end)
  local n_value, n_broken = 0, 0
  for i = 1, 2 do
    if ValueError:is(errs[i]) then n_value = n_value + 1 end
    if BrokenBarrierError:is(errs[i]) then n_broken = n_broken + 1 end
  end
  t.ok(n_value == 1 and n_broken == 1,
       "a failing action: its error in the last thread, BrokenBarrierError in the other")
  t.is(b.broken, true, "a failing action breaks the barrier")
end

-- class and message -------------------------------------------------------------------------------
t.ok(RuntimeError:is(BrokenBarrierError()), "BrokenBarrierError is a RuntimeError")
t.like(tostring(BrokenBarrierError("x")), "BrokenBarrierError: x", "tostring of BrokenBarrierError")
t.raises(function() threading.Barrier(0) end, ValueError, "Barrier(0): ValueError")

t.done_testing()
