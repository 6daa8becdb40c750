#!/usr/bin/env gilua
-- concurrent.futures, thread half: Future states and outcomes, callbacks,
-- errors with the task's traceback, ThreadPoolExecutor (submit, map, lazy
-- workers, initializer, shutdown, <close>, exit), as_completed, wait.
local t = require "tap"
local futures = require "concurrent.futures"
local threading = require "threading"
local time = require "time"
local util = require "support.util"

local function count(set)
  local n = 0
  for _ in pairs(set) do n = n + 1 end
  return n
end

-- exception classes ------------------------------------------------------------------------
do
  t.is(futures.TimeoutError, TimeoutError, "futures.TimeoutError is the builtin TimeoutError")
  t.ok(futures.CancelledError:is_subclass(futures.Error), "CancelledError is a futures.Error")
  t.ok(futures.InvalidStateError:is_subclass(futures.Error), "InvalidStateError is a futures.Error")
  t.ok(futures.Error:is_subclass(Exception), "futures.Error is an Exception")
  t.ok(futures.BrokenExecutor:is_subclass(RuntimeError), "BrokenExecutor is a RuntimeError")
  t.ok(futures.BrokenThreadPool:is_subclass(futures.BrokenExecutor), "BrokenThreadPool is a BrokenExecutor")
  t.is(futures.FIRST_COMPLETED, "FIRST_COMPLETED", "FIRST_COMPLETED")
end

-- a Future by hand ----------------------------------------------------------------------------
do
  local f = futures.Future()
  t.ok(not f:done() and not f:running() and not f:cancelled(), "a new Future is pending")
  t.like(tostring(f), "^<Future at 0x%x+ state=pending>$", "tostring of a pending future")
  t.raises(function() f:result(0.05) end, TimeoutError, "result(0.05) of a pending future: TimeoutError")
  t.raises(function() f:exception(0) end, TimeoutError, "exception(0) too")
  t.is(f:set_running_or_notify_cancel(), true, "set_running_or_notify_cancel on a pending future: true")
  t.is(f:running(), true, "... it is running")
  t.is(f:cancel(), false, "cancel() of a running future: false")
  f:set_result(1, nil, 3)
  t.ok(f:done() and not f:running(), "set_result: done")
  local a, b, c = f:result()
  t.ok(a == 1 and b == nil and c == 3 and select("#", f:result()) == 3,
       "result() returns every value, nils included")
  t.is(f:exception(), nil, "exception() of a successful future: nil")
  t.raises(function() f:set_result(2) end, futures.InvalidStateError, "a second set_result: InvalidStateError")
  t.raises(function() f:set_exception("x") end, futures.InvalidStateError, "set_exception after it: InvalidStateError")
  t.is(f:cancel(), false, "cancel() of a finished future: false")
  t.like(tostring(f), "state=finished returned integer", "tostring of a finished future")

  local g = futures.Future()
  local e = ValueError("nope")
  g:set_exception(e)
  t.is(select(2, pcall(g.result, g)), e, "set_exception: result() raises that very object")
  t.is(g:exception(), e, "exception() returns it")

  local h = futures.Future()
  t.is(h:cancel(), true, "cancel() of a pending future: true")
  t.is(h:cancel(), true, "cancel() again: still true")
  t.ok(h:cancelled() and h:done(), "cancelled and done")
  t.raises(function() h:result() end, futures.CancelledError, "result() of a cancelled future: CancelledError")
  t.raises(function() h:exception() end, futures.CancelledError, "exception() too")
  t.is(h:set_running_or_notify_cancel(), false, "set_running_or_notify_cancel of a cancelled future: false")
  t.is(h:cancelled(), true, "... still cancelled")

  local z = futures.Future()
  z:set_result()
  t.is(select("#", z:result()), 0, "a task returning nothing: result() returns nothing")
end

-- done callbacks ----------------------------------------------------------------------------------
do
  local f = futures.Future()
  local calls = {}
  f:add_done_callback(function(x) calls[#calls + 1] = x end)
  t.is(#calls, 0, "a callback is not called while pending")
  f:set_result(42)
  t.ok(#calls == 1 and calls[1] == f, "... is called with the future when it is done")
  f:add_done_callback(function(x) calls[#calls + 1] = x end)
  t.is(#calls, 2, "a callback added to a done future is called at once")
  local c = futures.Future()
  local seen
  c:add_done_callback(function(x) seen = x:cancelled() end)
  c:cancel()
  t.is(seen, true, "callbacks run on cancel too")
  t.raises(function() c:add_done_callback(5) end, TypeError, "add_done_callback(5): TypeError")

  local r = t.run([[
    local futures = require "concurrent.futures"
    local f = futures.Future()
    f:add_done_callback(function() error("cb failed") end)
    f:add_done_callback(function() print("second callback ran") end)
    f:set_result(1)
    print("after", f:result())
  ]])
  t.is(r.status, 0, "a failing callback does not stop the program")
  t.like(r.stdout, "second callback ran\nafter\t1", "the next callbacks still run")
  t.like(r.stderr, "exception calling callback for <Future", "the failure is reported on stderr")
  t.like(r.stderr, "cb failed", "... with its message")
end

-- ThreadPoolExecutor: submit, result, errors ------------------------------------------------------------
do
  local pool = futures.ThreadPoolExecutor{ max_workers = 2 }
  local f = pool:submit(function(a, b) return a + b, a * b end, 3, 4)
  local s, p = f:result()
  t.ok(s == 7 and p == 12, "submit(fn, 3, 4): result() returns both values")
  t.is(pool:submit(function(...) return select("#", ...) end, nil, nil):result(), 2,
       "nil arguments are passed on")

  local e = ValueError("bad value")
  local ef = pool:submit(function() error(e) end)
  local ok, got = pcall(ef.result, ef)
  t.ok(not ok and got == e, "an exception object raised in a task is re-raised, the same object")
  t.like(got.traceback, "tests/futures.lua:%d+", "... its traceback shows the task's code")
  t.unlike(got.traceback, "stdlib/", "... and not the worker's own frames")
  t.is(ef:exception(), e, "exception() returns it")
  t.like(tostring(ef), "raised ValueError", "tostring: raised ValueError")

  local function failing_task()
    local x = nil
    return x.field
  end
  local sf = pool:submit(failing_task)
  ok, got = pcall(sf.result, sf)
  t.ok(not ok and type(got) == "string", "a string error is re-raised as a string")
  t.like(got, "attempt to index", "... with its message")
  t.like(got, "stack traceback:\n.*futures%.lua:%d+: in ", "... and the task's traceback")
  t.unlike(got, "stdlib/", "... without the worker's own frames")
  t.like(sf:exception(), "futures%.lua:%d+: attempt to index a nil value", "exception() gives the plain message")
  t.unlike(sf:exception(), "traceback", "... without the traceback")

  local dt, r = util.timed(function() return pool:submit(time.sleep, 0.2):result(5) end)
  t.between(dt, 0.17, 3, "result(5) waits for a 0.2 s task")
  t.is(r, nil, "... time.sleep returns nothing")
  local slow = pool:submit(time.sleep, 0.3)
  dt = util.timed(pcall, slow.result, slow, 0.1)
  t.raises(function() slow:result(0.05) end, TimeoutError, "result(timeout) of an unfinished task: TimeoutError")
  t.between(dt, 0.08, 2, "... after about the timeout")
  t.raises(function() slow:exception(0.01) end, TimeoutError, "exception(timeout) too")
  slow:result()
  t.raises(function() pool:submit(5) end, TypeError, "submit(5): TypeError")
  pool:shutdown()
  t.raises(function() pool:submit(print) end, RuntimeError, "submit after shutdown: RuntimeError")
end

-- states of futures in a pool, cancellation ----------------------------------------------------------------
do
  local pool = futures.ThreadPoolExecutor(1)
  local go = threading.Event()
  local started = threading.Event()
  local a = pool:submit(function() started:set(); go:wait(5); return "a" end)
  local b = pool:submit(function() return "b" end)
  local c = pool:submit(function() return "c" end)
  started:wait(5)
  t.is(a:running(), true, "the task being run is running")
  t.is(a:cancel(), false, "... and cannot be cancelled")
  t.ok(not b:running() and not b:done(), "a queued task is pending")
  t.is(b:cancel(), true, "... and can be cancelled")
  t.ok(b:cancelled() and b:done(), "... then it is cancelled and done")
  go:set()
  t.is(a:result(), "a", "the running task finishes")
  t.is(c:result(), "c", "the next one runs")
  t.raises(function() b:result() end, futures.CancelledError, "the cancelled one raises CancelledError")
  pool:shutdown()
end

-- map ------------------------------------------------------------------------------------------------------
do
  local pool <close> = futures.ThreadPoolExecutor(3)
  local r = pool:map(function(x) time.sleep(0.01 * (5 - x)); return x * x end, { 1, 2, 3, 4, 5 })
  t.is(table.concat(r, " "), "1 4 9 16 25", "map returns the results in order")
  r = pool:map(function(x, y) return x + y end, { 1, 2, 3 }, { 10, 20 })
  t.is(table.concat(r, " "), "11 22", "map zips several arrays up to the shortest")
  t.is(#pool:map(print, {}), 0, "map over an empty array: empty array")
  local dt, ok, err = util.timed(pcall, pool.map, pool, function(x)
    if x == 2 then error(ValueError("two")) end
    time.sleep(0.2)
    return x
  end, { 1, 2, 3 })
  t.ok(not ok and ValueError:is(err), "an error in a map call is raised by map")
  t.between(dt, 0.17, 3, "... when its turn comes (after the 0.2 s call before it)")
  dt, ok, err = util.timed(pcall, pool.map, pool, time.sleep, { 0.05, 0.6 }, { timeout = 0.2 })
  t.ok(not ok and TimeoutError:is(err), "map with {timeout = 0.2}: TimeoutError")
  t.between(dt, 0.17, 0.55, "... after about 0.2 s")
end

-- the course: 10 tasks of sleep(0.1) on 4 workers -----------------------------------------------------------
do
  local function tache(n) time.sleep(0.1); return n * n end
  local t0 = util.clock()
  local resultats
  do
    local pool <close> = futures.ThreadPoolExecutor{ max_workers = 4 }
    local fs = {}
    for i = 0, 9 do fs[#fs + 1] = pool:submit(tache, i) end
    resultats = {}
    for i, f in ipairs(fs) do resultats[i] = f:result() end
  end
  local dt = util.clock() - t0
  t.is(table.concat(resultats, ","), "0,1,4,9,16,25,36,49,64,81", "10 tasks: the squares")
  t.between(dt, 0.29, 0.6, "10 x sleep(0.1) on 4 workers: 3 rounds, about 0.3 s (" ..
            string.format("%.3f", dt) .. " s)")
  t0 = util.clock()
  do
    local pool <close> = futures.ThreadPoolExecutor(4)
    resultats = pool:map(tache, { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 })
  end
  dt = util.clock() - t0
  t.is(#resultats, 10, "map version: 10 results")
  t.between(dt, 0.29, 0.6, "map version: about 0.3 s too")
end

-- workers: lazily started, named, bounded by max_workers -----------------------------------------------------
do
  local pool = futures.ThreadPoolExecutor{ max_workers = 3, thread_name_prefix = "ouvrier" }
  t.is(pool._nthreads, 0, "no worker before the first submit")
  local names = {}
  for _ = 1, 5 do
    local n = pool:submit(function() return threading.current_thread().name end):result()
    names[n] = true
  end
  t.is(pool._nthreads, 1, "tasks submitted one at a time reuse one idle worker")
  t.ok(names["ouvrier_0"], "workers are named prefix_N")
  local gate = threading.Event()
  local fs = {}
  for i = 1, 10 do fs[i] = pool:submit(function() gate:wait(5) end) end
  t.is(pool._nthreads, 3, "a burst of tasks starts max_workers workers, no more")
  gate:set()
  futures.wait(fs)
  pool:shutdown()
  local d = futures.ThreadPoolExecutor()
  t.is(d._max_workers, math.min(32, os.cpu_count() + 4), "default max_workers: min(32, cpu_count + 4)")
  d:shutdown()
  t.raises(function() futures.ThreadPoolExecutor(0) end, ValueError, "max_workers = 0: ValueError")
  t.raises(function() futures.ThreadPoolExecutor{ initializer = 3 } end, TypeError,
           "an initializer that is not callable: TypeError")
end

-- initializer -----------------------------------------------------------------------------------------------
do
  local inits = {}
  local pool = futures.ThreadPoolExecutor{
    max_workers = 2,
    initializer = function(tag, n) inits[#inits + 1] = tag .. n end,
    initargs = { "w", 7 },
  }
  pool:submit(print, "")
  pool:shutdown()
  t.is(inits[1], "w7", "the initializer runs in a worker with initargs")

  local r = t.run([[
    local futures = require "concurrent.futures"
    local time = require "time"
    local pool = futures.ThreadPoolExecutor{ max_workers = 1,
      initializer = function() error("init failed") end }
    local f = pool:submit(function() return 1 end)
    local ok, e = pcall(f.result, f, 5)
    print("pending", ok, futures.BrokenThreadPool:is(e))
    local ok2, e2 = pcall(pool.submit, pool, print)
    print("submit", ok2, futures.BrokenThreadPool:is(e2))
    pool:shutdown()
  ]])
  t.is(r.status, 0, "a failing initializer does not kill the program")
  t.like(r.stdout, "pending\tfalse\ttrue", "the queued task fails with BrokenThreadPool")
  t.like(r.stdout, "submit\tfalse\ttrue", "submit then raises BrokenThreadPool")
  t.like(r.stderr, "Exception in initializer:", "the initializer's error is reported")
end

-- shutdown options -----------------------------------------------------------------------------------------
do
  local pool = futures.ThreadPoolExecutor(1)
  local gate = threading.Event()
  local first = pool:submit(function() gate:wait(5); return 1 end)
  local rest = {}
  for i = 1, 5 do rest[i] = pool:submit(function() return i end) end
  local dt = util.timed(pool.shutdown, pool, { wait = false, cancel_futures = true })
  t.ok(dt < 0.1, "shutdown{wait = false} returns at once")
  local cancelled = 0
  for i = 1, 5 do if rest[i]:cancelled() then cancelled = cancelled + 1 end end
  t.is(cancelled, 5, "cancel_futures = true cancels the queued tasks")
  local done, not_done = futures.wait(rest, 1)
  t.ok(count(done) == 5 and count(not_done) == 0, "cancelled futures count as done for wait()")
  gate:set()
  t.is(first:result(5), 1, "the running task still finishes")
  pool:shutdown(true)

  local results = {}
  do
    local p <close> = futures.ThreadPoolExecutor(2)
    for i = 1, 4 do p:submit(function() time.sleep(0.05); results[#results + 1] = i end) end
  end
  t.is(#results, 4, "<close> shuts the pool down, waiting for the tasks")
end

-- as_completed ------------------------------------------------------------------------------------------------
do
  local pool <close> = futures.ThreadPoolExecutor(5)
  -- each task ends when its event is set; the loop sets the next one only
  -- after it got the previous future, so the finishing order is known
  local events, fs = {}, {}
  for i = 1, 5 do
    events[i] = threading.Event()
    fs[i] = pool:submit(function() events[i]:wait(5); return i end)
  end
  local wanted, order = { 3, 1, 5, 2, 4 }, {}
  events[wanted[1]]:set()
  for f in futures.as_completed(fs) do
    order[#order + 1] = f:result()
    local nxt = wanted[#order + 1]
    if nxt then events[nxt]:set() end
  end
  t.is(table.concat(order, " "), "3 1 5 2 4", "as_completed yields futures as they finish")

  local keyed = {}
  for i = 1, 4 do keyed[pool:submit(function() return i * 10 end)] = i end
  local n, agree = 0, true
  for f in futures.as_completed(keyed) do
    n = n + 1
    if f:result() ~= keyed[f] * 10 then agree = false end
  end
  t.ok(n == 4 and agree, "as_completed takes a table keyed by futures (the course's dict)")

  local done = pool:submit(function() return "early" end)
  done:result()
  local late = pool:submit(time.sleep, 0.5)
  local got, ok, err = {}, nil, nil
  local dt = util.timed(function()
    ok, err = pcall(function()
      for f in futures.as_completed({ late, done }, 0.15) do got[#got + 1] = f end
    end)
  end)
  t.ok(got[1] == done and #got == 1, "futures already done come first")
  t.ok(not ok and TimeoutError:is(err), "as_completed(fs, 0.15) raises TimeoutError when time runs out")
  t.like(tostring(err), "1 %(of 2%) futures unfinished", "... saying how many are unfinished")
  t.between(dt, 0.13, 0.45, "... after about the timeout")
  t.is(#(late._waiters or {}), 0, "... and detaches itself from the futures")

  local x = pool:submit(time.sleep, 0.05)
  local y = pool:submit(time.sleep, 0.2)
  for _ in futures.as_completed({ x, y }) do break end
  t.is(#(y._waiters or {}), 0, "leaving the loop early detaches it too (closing value)")
  local empty = 0
  for _ in futures.as_completed({}) do empty = empty + 1 end
  t.is(empty, 0, "as_completed of nothing ends at once")
  t.raises(function() futures.as_completed({ 1, 2 }) end, TypeError, "as_completed of non-futures: TypeError")
end

-- wait ------------------------------------------------------------------------------------------------------
do
  local pool <close> = futures.ThreadPoolExecutor(4)
  local fs = {}
  for i = 1, 4 do fs[i] = pool:submit(time.sleep, 0.1 * i) end
  local dt, done, not_done = util.timed(futures.wait, fs, nil, futures.FIRST_COMPLETED)
  t.ok(done[fs[1]] and count(done) == 1 and count(not_done) == 3,
       "wait(FIRST_COMPLETED): the first task done, three not done")
  t.between(dt, 0.08, 0.35, "... after about the first task's time")
  done, not_done = futures.wait(fs, { timeout = 0.1 })
  t.ok(count(not_done) >= 1 and count(done) + count(not_done) == 4, "wait{timeout = 0.1}: some not done")
  dt, done, not_done = util.timed(futures.wait, fs)
  t.ok(count(done) == 4 and count(not_done) == 0, "wait(ALL_COMPLETED, the default): all done")

  local bad = {}
  bad[1] = pool:submit(time.sleep, 0.4)
  bad[2] = pool:submit(function() time.sleep(0.05); error("fail") end)
  bad[3] = pool:submit(time.sleep, 0.4)
  dt, done, not_done = util.timed(futures.wait, bad, { return_when = futures.FIRST_EXCEPTION })
  t.ok(done[bad[2]] and not_done[bad[1]], "wait(FIRST_EXCEPTION) returns at the first exception")
  t.between(dt, 0.03, 0.3, "... without waiting for the others")
  local good = { pool:submit(time.sleep, 0.05), pool:submit(time.sleep, 0.1) }
  done = futures.wait(good, nil, futures.FIRST_EXCEPTION)
  t.is(count(done), 2, "FIRST_EXCEPTION without exception waits for all")
  t.raises(function() futures.wait(fs, nil, "SOMETIMES") end, ValueError, "an unknown return_when: ValueError")
  done, not_done = futures.wait({})
  t.ok(count(done) == 0 and count(not_done) == 0, "wait({}) returns two empty sets")
  futures.wait(bad)
end

-- Executor: the base class --------------------------------------------------------------------------------------
do
  t.raises(function() futures.Executor():submit(print) end, NotImplementedError,
           "Executor:submit is for subclasses")
  local Inline = futures.Executor:extend("InlineExecutor")
  function Inline:submit(fn, ...)
    local f = futures.Future()
    f:set_result(fn(...))
    return f
  end
  local r = Inline():map(function(x) return x + 1 end, { 1, 2, 3 })
  t.is(table.concat(r, ","), "2,3,4", "a subclass defining submit gets map")
end

-- many small tasks --------------------------------------------------------------------------------------------
do
  local pool <close> = futures.ThreadPoolExecutor(8)
  local fs, sum = {}, 0
  for i = 1, 3000 do fs[i] = pool:submit(function(x) return x * 2 end, i) end
  for i = 1, 3000 do sum = sum + fs[i]:result() end
  t.is(sum, 3000 * 3001, "3000 tasks on 8 workers: every result")
end

-- program exit waits for the pool's queued work -------------------------------------------------------------------
do
  local r = t.run([[
    local futures = require "concurrent.futures"
    local time = require "time"
    local pool = futures.ThreadPoolExecutor(2)
    for i = 1, 4 do
      pool:submit(function() time.sleep(0.05); print("task " .. i) end)
    end
    print("main ends")
  ]])
  t.is(r.status, 0, "a script that never shuts its pool down exits")
  local n = select(2, r.stdout:gsub("task %d", ""))
  t.is(n, 4, "... after its queued tasks ran (Python's exit rule)")
  t.like(r.stdout, "^main ends\n", "... the main script having ended first")

  r = t.run([[
    local futures = require "concurrent.futures"
    do
      local pool = futures.ThreadPoolExecutor(2)
      pool:submit(print, "ran"):result()
    end
    collectgarbage(); collectgarbage()
    local time = require "time"
    time.sleep(0.1)
    print("collected")
  ]])
  t.is(r.status, 0, "an executor dropped without shutdown does not keep the program alive")
  t.like(r.stdout, "ran\ncollected", "... its task ran")
end

-- executors shut down and collected before exit: the exit hook joins their
-- threads, whose handles may be finalized already (it crashed)
do
  local r = t.run([[
    local futures = require "concurrent.futures"
    for i = 1, 3 do
      local p <close> = futures.ThreadPoolExecutor{ max_workers = 2 }
      p:map(function(x) return x end, { 1, 2, 3, 4 })
    end
    collectgarbage()
    print("end")
  ]])
  t.is(r.status, 0, "pools shut down and collected before exit: a clean exit")
  t.like(r.stdout, "end", "... after the script ran")
end

t.done_testing()
