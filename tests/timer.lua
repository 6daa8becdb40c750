#!/usr/bin/env gilua
-- threading.Timer(interval, fn, args) and cancel.
local t = require "tap"
local threading = require "threading"
local time = require "time"
local util = require "support.util"

do
  local fired_at, got
  local t0 = util.clock()
  local tm = threading.Timer(0.2, function(a, b) fired_at = util.clock(); got = {a, b} end, {"x", 7})
  t.ok(threading.Thread:is(tm), "a Timer is a Thread")
  tm:start()
  time.sleep(0.05)
  t.is(fired_at, nil, "not fired before its interval")
  tm:join(5)
  t.ok(fired_at ~= nil, "fired")
  t.between(fired_at and fired_at - t0 or -1, 0.18, 1.5, "after about its interval")
  t.ok(got and got[1] == "x" and got[2] == 7, "with its arguments")
  t.is(tm:is_alive(), false, "the timer thread ended after firing")
end

do -- cancel before the interval: never fires, and the thread ends at once
  local fired = false
  local tm = threading.Timer(0.3, function() fired = true end)
  tm:start()
  time.sleep(0.05)
  local dt = util.timed(function() tm:cancel(); tm:join(5) end)
  t.ok(dt < 0.2, "cancel() ends the waiting timer promptly")
  time.sleep(0.4)
  t.is(fired, false, "a cancelled timer never fires")
  t.is(tm:is_alive(), false, "its thread is gone")
end

do -- cancel before start
  local fired = false
  local tm = threading.Timer(0.05, function() fired = true end)
  tm:cancel()
  tm:start()
  tm:join(5)
  t.is(fired, false, "a timer cancelled before start never fires")
end

do -- several timers overlap (their waits release the GIL)
  local count = 0
  local tms = {}
  local t0 = util.clock()
  for i = 1, 5 do
    tms[i] = threading.Timer(0.2, function() count = count + 1 end)
    tms[i]:start()
  end
  for i = 1, 5 do tms[i]:join(5) end
  local dt = util.clock() - t0
  t.is(count, 5, "five timers fired")
  t.between(dt, 0.18, 0.9, "together in about one interval")
end

do -- options-table form, no args
  local fired = false
  local tm = threading.Timer{ interval = 0.01, function_ = function() fired = true end }
  tm:start(); tm:join(5)
  t.ok(fired, "Timer{interval =, function_ =} fires")
end

t.raises(function() threading.Timer("soon", print) end, TypeError, "a non-number interval: TypeError")
t.raises(function() threading.Timer(1, 42) end, TypeError, "a non-callable function: TypeError")

t.done_testing()
