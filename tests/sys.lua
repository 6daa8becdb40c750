#!/usr/bin/env gilua
-- sys: the switch interval (and its effect), argv, platform.
local t = require "tap"
local threading = require "threading"
local sys = require "sys"
local gil = require "gil"
local util = require "support.util"

-- getswitchinterval / setswitchinterval -------------------------------------------------------
t.is(sys.getswitchinterval(), 0.005, "the default switch interval is 5 ms")
sys.setswitchinterval(0.02)
t.is(sys.getswitchinterval(), 0.02, "setswitchinterval(0.02) is read back")
t.is(gil.stats().switch_interval, 0.02, "gil.stats() reports the interval too")
t.raises(function() sys.setswitchinterval(0) end, ValueError, "setswitchinterval(0): ValueError")
t.raises(function() sys.setswitchinterval(-1) end, ValueError, "setswitchinterval(-1): ValueError")
t.is(sys.getswitchinterval(), 0.02, "a refused value leaves the interval alone")

-- The interval drives the switching rate of two CPU-bound threads ----------------------------------
local N = util.calibrate(0.25)

local function switch_rate(interval)
  sys.setswitchinterval(interval)
  gil.reset_stats()
  local t0 = util.clock()
  local a = threading.Thread{ target = util.spin, args = {N} }
  local b = threading.Thread{ target = util.spin, args = {N} }
  a:start(); b:start(); a:join(); b:join()
  local dt = util.clock() - t0
  local st = gil.stats()
  return st.switches / dt, st.forced_switches / dt, dt
end

-- 1 ms against 50 ms: with 1 ms the rate is bounded by the OS scheduler on
-- a loaded 2-core machine (70 to 450 switches/s measured), with 50 ms it
-- cannot exceed about 20/s, so "many more" is a safe factor of 3.
local fast, fast_forced = switch_rate(0.001)
local slow, slow_forced = switch_rate(0.05)
sys.setswitchinterval(0.005)
t.note(("switches per second: %.0f at 1 ms, %.0f at 50 ms (forced %.0f, %.0f)")
       :format(fast, slow, fast_forced, slow_forced))
t.ok(fast > 3 * slow, "with interval 0.001 the GIL switches many more times per second than with 0.05")
t.ok(slow_forced <= 1 / 0.05 + 8,
     "with interval 0.05 at most about one forced switch every 50 ms (" ..
     string.format("%.0f", slow_forced) .. "/s)")
t.ok(fast_forced > 1 / 0.05 + 8, "with interval 0.001, more forced switches than 0.05 allows (" ..
     string.format("%.0f", fast_forced) .. "/s)")
t.is(sys.getswitchinterval(), 0.005, "interval set back to 5 ms")

-- argv and platform, in a child gilua ------------------------------------------------------------------
do
  local r = t.run([[
    local sys = require "sys"
    io.write(#sys.argv, "\n")
    for i = 1, #sys.argv do io.write(sys.argv[i], "\n") end
    io.write(tostring(arg and arg[1]), "\n")
    io.write(sys.platform, "\n")
  ]], { args = { "one", "two words", "3" } })
  t.is(r.status, 0, "the child ran")
  local lines = {}
  for l in r.stdout:gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  t.is(lines[1], "4", "sys.argv has the script and three arguments")
  t.like(lines[2] or "", "%.lua$", "sys.argv[1] is the script (Python's argv[0])")
  t.is(lines[3], "one", "sys.argv[2]")
  t.is(lines[4], "two words", "sys.argv[3] keeps spaces")
  t.is(lines[5], "3", "sys.argv[4] is a string")
  t.is(lines[6], "one", "Lua's arg[1] is the same first argument")
  t.is(lines[7], "linux", "sys.platform")
end

t.done_testing()
