#!/usr/bin/env gilua
-- asyncio: coroutine objects, run, tasks and their order, sleep, futures,
-- cancellation at await points, gather (results in order, errors,
-- return_exceptions, cancelling), wait_for, wait, as_completed, shield,
-- timeout with <close>, the loop's call_soon/call_later/call_at/stop,
-- threads (to_thread, run_in_executor, call_soon_threadsafe,
-- run_coroutine_threadsafe) and the never-awaited warning.
local t = require "tap"
local asyncio = require "asyncio"
local threading = require "threading"
local time = require "time"
local util = require "support.util"

local async, run, sleep = asyncio.async, asyncio.run, asyncio.sleep

local function count(set)
  local n = 0
  for _ in pairs(set) do n = n + 1 end
  return n
end

-- exception classes --------------------------------------------------------------
do
  t.is(asyncio.TimeoutError, TimeoutError, "asyncio.TimeoutError is the builtin TimeoutError")
  t.ok(asyncio.CancelledError:is_subclass(BaseException), "CancelledError is a BaseException")
  t.ok(not asyncio.CancelledError:is_subclass(Exception), "... and not an Exception")
  t.ok(asyncio.InvalidStateError:is_subclass(Exception), "InvalidStateError is an Exception")
end

-- coroutine functions and run ------------------------------------------------------
do
  local ran = false
  local f = async(function(a, b) ran = true; return a + b, a * b end)
  local c = f(2, 3)
  t.ok(asyncio.iscoroutine(c), "calling a coroutine function gives a coroutine object")
  t.ok(not ran, "... that has not run yet")
  local s, p = run(c)
  t.ok(ran and s == 5 and p == 6, "run() returns every value of the coroutine")
  t.raises(function() run(c) end, RuntimeError, "a coroutine object runs only once")
  t.raises(function() run(42) end, TypeError, "run() wants a coroutine")
  local va = async(function(...) return select("#", ...), ... end)
  t.is(run(va(1, nil, nil)), 3, "a vararg coroutine function gets every argument, trailing nils too")
  t.is(run(va()), 0, "... and none")
  local one = async(function(a) return a end)
  t.is(run(one(7, 8)), 7, "a one-parameter coroutine function gets its argument")
  t.is(run(one()), nil, "... nil when none is given")
  t.is(run(async(function()
    local f = asyncio.get_running_loop():create_future()
    f:set_result(nil)
    return f:result()
  end)()), nil, "a future whose result is nil gives nil (not false)")
  local none = async(function() return "zero" end)
  t.is(run(none(1, 2)), "zero", "a coroutine function without parameters ignores arguments")
  local two = async(function(a, b) return b end)
  t.is(run(two(1, 2)), 2, "two parameters: both arguments")

  local inner = async(function(x) sleep(0):await(); return x * 2 end)
  local outer = async(function() return inner(21):await() + asyncio.await(inner(0)) end)
  t.is(run(outer()), 42, "awaiting coroutines inside a coroutine, x:await() and asyncio.await(x)")

  t.raises(function() run(async(function() error(ValueError("boom")) end)()) end,
           ValueError, "an error in the main coroutine comes out of run()")
  local err = t.raises(function() run(async(function() error("plain") end)()) end,
                       "plain", "a string error too")
  t.like(tostring(err), "stack traceback", "... with the task's traceback")
  t.raises(function() sleep(1):await() end, RuntimeError, "await outside a task is an error")

  local nested = async(function()
    local c = async(function() end)()
    local ok, e = pcall(run, c)
    c:close()                           -- no never-awaited warning
    error(e, 0)
  end)
  t.raises(function() run(nested()) end, RuntimeError, "run() inside a running loop")
end

-- say_hello: two tasks, ordering and overlap -------------------------------------------
do
  local out = {}
  local say = async(function(name)
    out[#out + 1] = "Hello " .. name
    sleep(0.2):await()
    out[#out + 1] = "World " .. name
  end)
  local dt = util.timed(run, async(function()
    local t1 = asyncio.create_task(say("a"))
    local t2 = asyncio.create_task(say("b"))
    t1:await(); t2:await()
  end)())
  t.is(table.concat(out, ","), "Hello a,Hello b,World a,World b", "Hello Hello World World")
  t.between(dt, 0.18, 0.6, "the two sleeps overlap")
end

-- ordering of tasks and sleep(0) -------------------------------------------------------
do
  local log = {}
  local worker = async(function(name, n)
    for i = 1, n do
      log[#log + 1] = name .. i
      sleep(0):await()
    end
    return name
  end)
  local res = run(async(function()
    local a = asyncio.create_task(worker("a", 3))
    local b = asyncio.create_task(worker("b", 3), {name = "bee"})
    t.is(a:get_name():match("^Task%-%d+$") ~= nil, true, "default task names are Task-N")
    t.is(b:get_name(), "bee", "create_task{name=}")
    t.is(count(asyncio.all_tasks()), 3, "all_tasks: the main task and two others")
    t.ok(asyncio.current_task() ~= nil and asyncio.current_task() ~= a, "current_task")
    return asyncio.gather(a, b):await()
  end)())
  t.is(table.concat(log, " "), "a1 b1 a2 b2 a3 b3", "sleep(0) lets the others run, in order")
  t.is(res[1] .. res[2], "ab", "gather: results in order")
  t.is(run(async(function() return sleep(0.01, "r"):await() end)()), "r", "sleep(delay, result)")
end

-- a task's result has exactly the values its function returned ------------------------
do
  local n1, n2, n0, nn = run(async(function()
    local one = asyncio.create_task(async(function() sleep(0):await(); return 7 end)())
    local two = asyncio.create_task(async(function() sleep(0):await(); return 7, nil end)())
    local none = asyncio.create_task(async(function() sleep(0):await() end)())
    asyncio.gather(one, two, none):await()
    local c = async(function() return 1, 2, 3 end)()
    return select("#", one:result()), select("#", two:result()),
           select("#", none:result()), select("#", c:await())
  end)())
  t.is(n1, 1, "a task returning one value has one result")
  t.is(n2, 2, "... returning (7, nil): two")
  t.is(n0, 0, "... returning nothing: none")
  t.is(nn, 3, "awaiting a coroutine object gives all its values")
  local r = table.pack(run(async(function()
    local m = asyncio.create_task(async(function() sleep(0):await(); return 1, nil, 3, nil end)())
    return m:await()
  end)()))
  t.is(r.n, 4, "a suspended task's four results, trailing nil included")
  t.ok(r[1] == 1 and r[2] == nil and r[3] == 3, "... in order")
  local ok, e = run(async(function()
    local bad = asyncio.create_task(async(function() coroutine.yield(1, 2) end)())
    return pcall(function() return bad:await() end)
  end)())
  t.ok(not ok and RuntimeError:is(e), "coroutine.yield inside a task: the task fails with RuntimeError")
  t.like(tostring(e), "Task got bad yield: 1", "... saying what was yielded")
end

-- all_tasks follows tasks as they finish; current_task in nested code -------------------
do
  run(async(function()
    local tasks = {}
    for i = 1, 50 do
      tasks[i] = asyncio.create_task(async(function() for _ = 1, i % 5 do sleep(0):await() end end)())
    end
    t.is(count(asyncio.all_tasks()), 51, "all_tasks: 50 new tasks and the main one")
    sleep(0):await(); sleep(0):await()
    local left = 0
    for i = 1, 50 do if not tasks[i]:done() then left = left + 1 end end
    local set = asyncio.all_tasks()
    t.is(count(set), left + 1, "... and only the pending ones as others finish")
    local all_pending = true
    for task in pairs(set) do if task:done() then all_pending = false end end
    t.ok(all_pending, "... none of them done")
    asyncio.gather(table.unpack(tasks)):await()
    t.is(count(asyncio.all_tasks()), 1, "... down to the main task at the end")
    local me = asyncio.current_task()
    local gen = coroutine.wrap(function() coroutine.yield(asyncio.current_task()) end)
    t.is(gen(), me, "current_task() inside a coroutine nested in a task is that task")
    local inner = coroutine.wrap(function() return pcall(function() sleep(0):await() end) end)
    local ok, e = inner()
    t.ok(not ok and RuntimeError:is(e), "awaiting inside a nested coroutine: RuntimeError")
  end)())
end

do
end

-- futures ------------------------------------------------------------------------------
do
  run(async(function()
    local loop = asyncio.get_running_loop()
    local f = loop:create_future()
    t.ok(not f:done(), "a new future is pending")
    t.raises(function() f:result() end, asyncio.InvalidStateError, "result() of a pending future")
    local seen
    f:add_done_callback(function(fut) seen = fut:result() end)
    loop:call_later(0.01, function() f:set_result(7) end)
    t.is(f:await(), 7, "awaiting a future gives its result")
    sleep(0):await()
    t.is(seen, 7, "done callbacks run (soon) after completion")
    t.raises(function() f:set_result(1) end, asyncio.InvalidStateError, "set_result twice")
    local g = asyncio.Future()
    g:set_exception(ValueError("bad"))
    t.raises(function() g:await() end, ValueError, "awaiting a failed future raises")
    t.ok(ValueError:is(g:exception()), "exception()")
    local h = loop:create_future()
    t.ok(h:cancel("why"), "cancel() a pending future")
    local e = t.raises(function() h:result() end, asyncio.CancelledError, "result() of a cancelled future")
    t.is(e and e.message, "why", "... with the cancel message")
    t.ok(not h:cancel(), "cancel() a done future: false")
  end)())
end

-- cancellation -------------------------------------------------------------------------
do
  local log = {}
  run(async(function()
    local sleeper = async(function()
      local ok, e = pcall(function() sleep(10):await() end)
      log[#log + 1] = asyncio.CancelledError:is(e) and "caught" or "not caught"
      error(e, 0)
    end)
    local task = asyncio.create_task(sleeper())
    sleep(0.01):await()
    t.ok(task:cancel("stop"), "cancel() a sleeping task")
    local e = t.raises(function() task:await() end, asyncio.CancelledError,
                       "awaiting a cancelled task raises CancelledError")
    t.ok(task:cancelled(), "the task is cancelled")
    t.is(log[1], "caught", "CancelledError was delivered at the await point")

    -- a task that catches the cancellation and goes on
    local stubborn = asyncio.create_task(async(function()
      pcall(function() sleep(10):await() end)
      return "survived"
    end)())
    sleep(0):await()
    stubborn:cancel()
    t.is(stubborn:await(), "survived", "a caught CancelledError lets the task finish")
    t.ok(not stubborn:cancelled(), "... not cancelled then")

    -- cancelled before it ever ran
    local never = asyncio.create_task(async(function() log[#log + 1] = "ran" end)())
    never:cancel()
    pcall(never.await, never)
    t.ok(never:cancelled() and log[2] == nil, "a task cancelled before its first step never runs")

    -- cancelling a task that awaits another task cancels the inner one
    local inner = asyncio.create_task(sleep(10))
    local outer = asyncio.create_task(async(function() return inner:await() end)())
    sleep(0):await()
    outer:cancel()
    pcall(outer.await, outer)
    t.ok(inner:cancelled(), "cancelling an awaiting task cancels what it awaits")
  end)())
end

-- gather ---------------------------------------------------------------------------------
do
  local res = run(async(function()
    local f = async(function(x, d) sleep(d):await(); return x end)
    return asyncio.gather(f(1, 0.03), f(2, 0.01), f(3, 0.02)):await()
  end)())
  t.is(table.concat(res, ","), "1,2,3", "gather keeps the order of its arguments")
  t.is(res.n, 3, "... with n")

  run(async(function()
    local boom = async(function() sleep(0.01):await(); error(ValueError("x")) end)
    local slow = asyncio.create_task(sleep(0.05, "slow"))
    t.raises(function() asyncio.gather(boom(), slow):await() end, ValueError,
             "the first error comes out of gather")
    t.is(slow:await(), "slow", "... and the other children go on")
    local r = asyncio.gather(boom(), sleep(0, 5), {return_exceptions = true}):await()
    t.ok(ValueError:is(r[1]) and r[2] == 5, "return_exceptions puts errors in the results")
    t.is(#asyncio.gather():await(), 0, "gather() of nothing")

    local a, b = asyncio.create_task(sleep(10)), asyncio.create_task(sleep(10))
    local g = asyncio.gather(a, b)
    sleep(0):await()
    g:cancel()
    t.raises(function() g:await() end, asyncio.CancelledError, "a cancelled gather raises CancelledError")
    t.ok(a:cancelled() and b:cancelled(), "... and cancels its children")
  end)())
end

-- wait_for, timeout -----------------------------------------------------------------------
do
  run(async(function()
    t.is(asyncio.wait_for(sleep(0.01, "ok"), 1):await(), "ok", "wait_for in time")
    local task = asyncio.create_task(sleep(10))
    local t0 = time.monotonic()
    t.raises(function() asyncio.wait_for(task, 0.05):await() end, TimeoutError,
             "wait_for raises TimeoutError")
    t.between(time.monotonic() - t0, 0.04, 1, "... after the timeout")
    t.ok(task:cancelled(), "... having cancelled the awaitable")
    t.is(asyncio.wait_for(sleep(0, 3), nil):await(), 3, "wait_for without timeout")

    local function with_timeout(d, work)
      local cm <close> = asyncio.timeout(d)
      return sleep(work, "done"):await()
    end
    t.is(with_timeout(1, 0.01), "done", "timeout(): in time")
    t.raises(function() with_timeout(0.02, 10) end, TimeoutError,
             "timeout() as <close> turns the cancellation into TimeoutError")
    t.is(asyncio.current_task():cancelling(), 0, "... and uncancels the task")
    local cm <close> = asyncio.timeout(nil)
    t.ok(cm:when() == nil and not cm:expired(), "timeout(nil) never expires")
  end)())
end

-- wait, as_completed, shield --------------------------------------------------------------------
do
  run(async(function()
    local a = asyncio.create_task(sleep(0.01, "a"))
    local b = asyncio.create_task(sleep(0.2, "b"))
    local done, pending = asyncio.wait({a, b}, {return_when = asyncio.FIRST_COMPLETED}):await()
    t.ok(done[a] and pending[b], "wait FIRST_COMPLETED")
    done, pending = asyncio.wait({a, b}, {timeout = 0.01}):await()
    t.ok(done[a] and pending[b], "wait with timeout")
    done, pending = asyncio.wait({a, b}):await()
    t.ok(done[a] and done[b] and next(pending) == nil, "wait ALL_COMPLETED")

    local order = {}
    local aws = {sleep(0.03, 3), sleep(0.01, 1), sleep(0.02, 2)}
    for f in asyncio.as_completed(aws) do order[#order + 1] = f:await() end
    t.is(table.concat(order, ","), "1,2,3", "as_completed gives results as they come")
    local n = 0
    local ok, e = pcall(function()
      for f in asyncio.as_completed({sleep(0.01), sleep(5)}, {timeout = 0.5}) do
        f:await(); n = n + 1
      end
    end)
    t.ok(not ok and TimeoutError:is(e) and n == 1, "as_completed with a timeout")

    local inner = asyncio.create_task(sleep(0.05, "inner"))
    local outer = asyncio.create_task(async(function() return asyncio.shield(inner):await() end)())
    sleep(0):await()
    outer:cancel()
    pcall(outer.await, outer)
    t.ok(outer:cancelled(), "the task awaiting a shield is cancelled")
    t.is(inner:await(), "inner", "... but the shielded task goes on")
  end)())
end

-- the loop ------------------------------------------------------------------------------------
do
  local loop = asyncio.new_event_loop()
  local log = {}
  loop:call_later(0.02, function() log[#log + 1] = "later"; loop:stop() end)
  loop:call_soon(function(a, b) log[#log + 1] = a .. b end, "so", "on")
  local h = loop:call_soon(function() log[#log + 1] = "cancelled" end)
  h:cancel()
  loop:call_at(loop:time() + 0.01, function() log[#log + 1] = "at" end)
  loop:run_forever()
  t.is(table.concat(log, ","), "soon,at,later", "call_soon, call_at, call_later, stop, Handle:cancel")
  t.is(loop:run_until_complete(sleep(0, "x")), "x", "run_until_complete")
  t.ok(not loop:is_running() and not loop:is_closed(), "is_running, is_closed")
  loop:close()
  t.ok(loop:is_closed(), "close")
  t.raises(function() loop:call_soon(print) end, RuntimeError, "a closed loop refuses work")

  -- an error in a callback is reported, the loop goes on
  local loop2 = asyncio.new_event_loop()
  local reported
  loop2:set_exception_handler(function(_, ctx) reported = ctx end)
  loop2:call_soon(function() error(ValueError("cb")) end)
  t.is(loop2:run_until_complete(sleep(0.01, 1)), 1, "a failing callback does not stop the loop")
  t.ok(reported and ValueError:is(reported.exception), "... it goes to the exception handler")
  loop2:close()
end

-- threads ------------------------------------------------------------------------------------
do
  local main_ident = threading.get_ident()
  run(async(function()
    local loop = asyncio.get_running_loop()
    local v, who = asyncio.to_thread(function(x) time.sleep(0.05); return x + 1, threading.get_ident() end, 1):await()
    t.ok(v == 2 and who ~= main_ident, "to_thread runs in another thread")
    t.raises(function() asyncio.to_thread(function() error(ValueError("t")) end):await() end,
             ValueError, "an error in to_thread comes back")
    -- the loop goes on while the thread blocks
    local ticks = 0
    local ticker = asyncio.create_task(async(function()
      while true do ticks = ticks + 1; sleep(0.01):await() end
    end)())
    loop:run_in_executor(nil, time.sleep, 0.15):await()
    ticker:cancel()
    t.ok(ticks >= 5, "the loop runs while an executor thread sleeps (" .. ticks .. " ticks)")

    local fut = loop:create_future()
    local th = threading.Thread{target = function()
      time.sleep(0.02)
      loop:call_soon_threadsafe(function() fut:set_result("from thread") end)
    end}
    th:start()
    t.is(fut:await(), "from thread", "call_soon_threadsafe wakes the loop")
    th:join()

    local cf_res
    local th2 = threading.Thread{target = function()
      local cf = asyncio.run_coroutine_threadsafe(async(function(x)
        sleep(0.01):await(); return x * 3
      end)(5), loop)
      cf_res = cf:result(5)
    end}
    th2:start()
    while th2:is_alive() do sleep(0.01):await() end
    t.is(cf_res, 15, "run_coroutine_threadsafe from another thread")
  end)())
end

-- never awaited --------------------------------------------------------------------------------
do
  local script = os.tmpname()
  local f = io.open(script, "w")
  f:write([[
local asyncio = require "asyncio"
local lonely = asyncio.async(function() end, "lonely")
lonely()
collectgarbage(); collectgarbage()
local used = asyncio.async(function() end, "used")
asyncio.run(used())
collectgarbage(); collectgarbage()
local fails = asyncio.async(function() error(ValueError("lost error")) end, "fails")
local handled = asyncio.async(function() error(ValueError("seen error")) end, "handled")
asyncio.run(asyncio.async(function()
  asyncio.create_task(fails())
  local h = asyncio.create_task(handled())
  asyncio.sleep(0.01):await()
  pcall(h.result, h)
end)())
collectgarbage(); collectgarbage()
]])
  f:close()
  local p = io.popen("gilua " .. script .. " 2>&1", "r")
  local out = p:read("a")
  p:close()
  os.remove(script)
  t.like(out, "RuntimeWarning: coroutine 'lonely' was never awaited",
         "a coroutine never awaited is reported when collected")
  t.ok(not out:find("'used'"), "an awaited one is not")
  t.like(out, "Task exception was never retrieved\nfuture: <Task finished name='Task%-%d+' coro=<coroutine object fails[^\n]*\n.*ValueError: lost error",
         "a task error nobody asked for is reported when the task is collected")
  t.ok(not out:find("seen error"), "one that was retrieved is not")
end

-- debug mode -------------------------------------------------------------------------------------
do
  local script = os.tmpname()
  local f = io.open(script, "w")
  f:write([[
local asyncio = require "asyncio"
local time = require "time"
asyncio.run(asyncio.async(function()
  local t0 = time.monotonic()
  while time.monotonic() - t0 < 0.15 do end
end, "busy")(), {debug = true})
]])
  f:close()
  local p = io.popen("gilua " .. script .. " 2>&1", "r")
  local out = p:read("a")
  p:close()
  os.remove(script)
  t.like(out, "Executing step of <Task [^\n]*busy[^\n]*> took 0%.1%d+ seconds",
         "run(coro, {debug = true}) reports a slow step")
end

t.done_testing()
