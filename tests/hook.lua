#!/usr/bin/env gilua
-- A user's debug.sethook keeps working while the GIL switches between
-- threads (gilua delivers its drop requests through a hook too).
local t = require "tap"
local threading = require "threading"
local time = require "time"
local gil = require "gil"
local util = require "support.util"

local N = util.calibrate(0.3)

-- Starts a CPU-bound thread that competes for the GIL; returns stop().
local function competitor()
  local state = { stop = false, ticks = 0 }
  local th = threading.Thread{ name = "competitor", target = function()
    while not state.stop do state.ticks = state.ticks + 1 end
  end }
  th:start()
  time.sleep(0.02)
  return state, function() state.stop = true; th:join() end
end

-- Count hook ------------------------------------------------------------------------------
local function hooked_spin()
  local events = 0
  local function hook() events = events + 1 end
  debug.sethook(hook, "", 1000)
  util.spin(N)
  local h, mask, count = debug.gethook()
  debug.sethook()
  return events, h == hook, mask, count
end

-- baseline: the same work in one thread, nobody competing
local base = hooked_spin()
t.ok(base > 100, "a count hook fires in a lone thread (" .. base .. " events)")

do
  local res = {}
  local state, stop = competitor()
  gil.reset_stats()
  local th = threading.Thread{ name = "hooked", target = function()
    local before = state.ticks
    res.events, res.same, res.mask, res.count = hooked_spin()
    res.other = state.ticks - before
  end }
  th:start(); th:join()
  local forced = gil.stats().forced_switches
  stop()
  t.ok(forced >= 5, "the GIL switched while the hook was set (" .. forced .. " forced switches)")
  t.ok(res.other and res.other > 0, "the competing thread ran meanwhile")
  t.between(res.events / base, 0.8, 1.25,
            "the count hook fired about as often as without switching (" ..
            tostring(res.events) .. " vs " .. base .. ")")
  t.ok(res.same, "debug.gethook() still returns the user's hook function")
  t.is(res.mask, "", "... with the user's mask")
  t.is(res.count, 1000, "... and count")
end

-- Line and call hooks in the main thread, exact event counts --------------------------------
do
  local K = 200000
  local function work()
    local x = 0
    for _ = 1, K do
      x = x + 1
    end
    return x
  end
  -- find the body line once
  local info = debug.getinfo(work, "S")
  local body_line = info.linedefined + 3

  local lines, calls = 0, 0
  local function f() return 1 end
  local function hook(ev, line)
    if ev == "line" then
      if line == body_line then lines = lines + 1 end
    elseif ev == "call" then
      if debug.getinfo(2, "f").func == f then calls = calls + 1 end
    end
  end

  local state, stop = competitor()
  gil.reset_stats()
  local before = state.ticks
  debug.sethook(hook, "cl")
  work()
  for _ = 1, 20000 do f() end
  debug.sethook()
  local other = state.ticks - before
  local forced = gil.stats().forced_switches
  stop()
  t.ok(forced >= 5, "the GIL switched while the line hook was set (" .. forced .. ")")
  t.ok(other > 0, "the competitor ran meanwhile")
  t.is(lines, K, "the line hook saw every iteration of the loop body")
  t.is(calls, 20000, "the call hook saw every call")
end

-- A hook belongs to its thread: another thread does not inherit it ----------------------------
do
  local fired_elsewhere = 0
  local hook_in_thread
  local main_hook = function() fired_elsewhere = fired_elsewhere + 1 end
  debug.sethook(main_hook, "", 100)
  local th = threading.Thread{ target = function() hook_in_thread = debug.gethook() end }
  th:start(); th:join()
  local h = debug.gethook()
  debug.sethook()
  t.is(hook_in_thread, nil, "a new thread starts without the main thread's hook")
  t.is(h, main_hook, "the main thread's hook survived starting and joining a thread")
end

-- A hook that raises still works as in Lua ----------------------------------------------------------
do
  local state, stop = competitor()
  local ok, err = pcall(function()
    debug.sethook(function() error("stopped by hook") end, "", 100000)
    util.spin(N)
  end)
  debug.sethook()
  stop()
  t.ok(not ok and tostring(err):find("stopped by hook"), "an error raised by a count hook propagates")
end

t.done_testing()
