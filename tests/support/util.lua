--[[
support/util.lua: helpers shared by the test files (not a test itself:
prove only runs tests/*.lua). `require "support.util"`.
]]

local time = require "time"
local threading = require "threading"

local M = {}

--[[ ThreadSanitizer stops a child forked from a threaded process at its
first new thread unless told otherwise: a test file that forks calls this
first. Under a TSan build without the option, it runs the file again with
it (children inherit it) and exits with that run's status. ]]
function M.tsan_allow_fork()
  if (os.getenv("GILUA_BUILD") or ""):match("tsan") and
     not (os.getenv("TSAN_OPTIONS") or ""):match("die_after_fork") then
    local gilua = os.getenv("GILUA") or "gilua"
    local opts = "die_after_fork=0 " .. (os.getenv("TSAN_OPTIONS") or "")
    local _, _, code = os.execute("TSAN_OPTIONS='" .. opts .. "' " .. gilua .. " " .. arg[0])
    os.exit(code or 1)
  end
end

M.clock = time.monotonic

-- Pure Lua CPU work: a numeric loop with arithmetic (back-edges only, no
-- calls), the kind of code the GIL must preempt.
function M.spin(n)
  local s = 0
  for i = 1, n do s = s + i % 7 end
  return s
end

--[[ How many spin() iterations take about `seconds` of CPU on this machine
and build (measured, not guessed: sanitizer builds and a loaded machine
differ a lot). ]]
local calibrated = {}
function M.calibrate(seconds)
  if calibrated[seconds] then return calibrated[seconds] end
  local n = 100000
  while true do
    local t0 = M.clock()
    M.spin(n)
    local dt = M.clock() - t0
    if dt >= 0.05 then
      local best = dt
      -- a second measurement, to lower the effect of a noisy neighbour
      t0 = M.clock()
      M.spin(n)
      dt = M.clock() - t0
      if dt < best then best = dt end
      local r = math.floor(n * seconds / best)
      calibrated[seconds] = r
      return r
    end
    n = n * 2
  end
end

--[[ A background thread that ticks every `period` seconds (sleeping in
between) until stopped. While another thread blocks in C *with the GIL
released*, the ticker keeps ticking; if the GIL were kept, it could not wake
up from its sleep and the count would stay put.

    local tk = util.ticker()
    local n0 = tk:count(); <blocking call>; local ticks = tk:count() - n0
    tk:stop()
]]
function M.ticker(period)
  period = period or 0.01
  local state = { n = 0, stop = false }
  local th = threading.Thread{
    name = "ticker", daemon = true,
    target = function()
      while not state.stop do
        state.n = state.n + 1
        time.sleep(period)
      end
    end,
  }
  th:start()
  -- wait for the first tick, so counting starts with the ticker running
  local t0 = M.clock()
  while state.n == 0 and M.clock() - t0 < 5 do time.sleep(0.005) end
  return {
    thread = th,
    count = function() return state.n end,
    stop = function() state.stop = true; th:join() end,
  }
end

--[[ Runs fn() with a ticker going; returns the number of ticks during fn,
the elapsed time, then fn's results. ]]
function M.ticks_during(fn, ...)
  local tk = M.ticker(0.01)
  local n0, t0 = tk:count(), M.clock()
  local res = table.pack(fn(...))
  local ticks, dt = tk:count() - n0, M.clock() - t0
  tk:stop()
  return ticks, dt, table.unpack(res, 1, res.n)
end

-- Time of fn(...), then its results.
function M.timed(fn, ...)
  local t0 = M.clock()
  local res = table.pack(fn(...))
  return M.clock() - t0, table.unpack(res, 1, res.n)
end

-- Starts a thread running fn(...); returns it.
function M.go(fn, ...)
  local args = table.pack(...)
  local t = threading.Thread{ target = function() return fn(table.unpack(args, 1, args.n)) end }
  t:start()
  return t
end

-- Waits (sleeping, so releasing the GIL) until pred() or `timeout` seconds.
function M.wait_until(pred, timeout)
  local t0 = M.clock()
  timeout = timeout or 5
  while not pred() do
    if M.clock() - t0 > timeout then return false end
    time.sleep(0.002)
  end
  return true
end

return M
