#!/usr/bin/env gilua
-- mpi.futures: MPIPoolExecutor on spawned workers (semantics and errors),
-- a worker killed while it holds tasks, the workers of
-- `mpiexec -n 3 gilua -m mpi.futures`, MPICommExecutor; gilua -m.
local t = require "tap"
local mpit = require "support.mpi"

mpit.need_mpiexec(t)

-- gilua -m: a module run as the program.
do
  local dir = t.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. t.shquote(dir))
  local f = assert(io.open(dir .. "/hello_m.lua", "w"))
  f:write('print("as", ..., arg[0], arg[1], arg[2])\nreturn {}\n')
  f:close()
  local p = io.popen(("LUA_PATH=%s %s -m hello_m x y 2>&1; echo status=$?"):format(
    t.shquote(dir .. "/?.lua"), t.shquote(t.gilua())))
  local out = p:read("a")
  p:close()
  t.like(out, "as\t__main__\thello_m\tx\ty\n", "gilua -m mod: the module runs with the name __main__, its arguments in arg")
  t.like(out, "status=0", "... and the command succeeds")
  p = io.popen(("%s -m no_such_module 2>&1; echo status=$?"):format(t.shquote(t.gilua())))
  out = p:read("a")
  p:close()
  t.like(out, "ModuleNotFoundError: No module named 'no_such_module'", "gilua -m: a module that is not there is named")
  t.like(out, "status=1", "... and the command fails")
  os.execute("rm -rf " .. t.shquote(dir))
end

-- Spawned workers: the executor's semantics.
local SPAWNED = [[
local mpif = require "mpi.futures"
local futures = require "concurrent.futures"
local time = require "time"

function helper(x) return x * 3 end     -- a global of the main script

local function pid_and(x) return os.getpid(), x end

if __name__ == "__main__" then
  local ok, e = pcall(mpif.MPIPoolExecutor, {max_workers = 0})
  check("max_workers 0 is a ValueError", not ok and ValueError:is(e), e)
  ok, e = pcall(mpif.MPIPoolExecutor, {max_workers = "two"})
  check("max_workers not a number is a TypeError", not ok and TypeError:is(e), e)
  ok, e = pcall(mpif.MPIPoolExecutor, {bogus = 1})
  check("an unknown option is a TypeError", not ok and TypeError:is(e), e)

  local ex = mpif.MPIPoolExecutor{ max_workers = 2, initializer = function(tag) WORKER_TAG = tag end,
                                   initargs = {"set by the initializer"} }
  check("num_workers", ex.num_workers == 2)
  local f = ex:submit(pid_and, "v")
  local pid, v = f:result(30)
  check("a task runs in another process and returns every value", pid ~= os.getpid() and v == "v", pid)
  check("the future is concurrent.futures'", futures.Future:is(f) and f:done() and not f:cancelled())
  check("the initializer ran with its arguments", ex:submit(function() return WORKER_TAG end):result(30) == "set by the initializer")
  check("the main script's globals are there (loaded as __mp_main__)",
        ex:submit(function(x) return helper(x), __name__ end, 5):result(30) == 15)
  local pids = {}
  local fs = {}
  for i = 1, 40 do fs[i] = ex:submit(function() time.sleep(0.01); return os.getpid() end) end
  for i = 1, 40 do pids[fs[i]:result(30)] = true end
  local n = 0
  for _ in pairs(pids) do n = n + 1 end
  check("both workers take tasks", n == 2, n)
  check("map keeps the order", table.concat(ex:map(function(x) return x * x end, {1, 2, 3, 4}), ",") == "1,4,9,16")
  check("map zips arrays", table.concat(ex:map(function(a, b) return a .. b end, {"a", "b"}, {"x", "y", "z"}), ",") == "ax,by")
  local un = ex:map(function(x) time.sleep(x == 1 and 0.3 or 0); return x end, {1, 2, 3}, {unordered = true})
  table.sort(un)
  check("map unordered gives every result", table.concat(un, ",") == "1,2,3")
  local order = ex:map(function(x) time.sleep(x == 1 and 0.5 or 0); return x end, {1, 2}, {unordered = true})
  check("... in the order they finish", order[1] == 2 and order[2] == 1, table.concat(order, ","))
  check("starmap", table.concat(ex:starmap(function(a, b) return a - b end, {{5, 1}, {9, 2}}), ",") == "4,7")
  local done, not_done = futures.wait({ex:submit(time.sleep, 0.01), ex:submit(time.sleep, 0.01)}, 30)
  check("futures.wait", next(not_done) == nil)
  local seen = 0
  for g in futures.as_completed({ex:submit(pid_and, 1), ex:submit(pid_and, 2)}, 30) do seen = seen + 1 end
  check("futures.as_completed", seen == 2)

  local err = ex:submit(function() error(ValueError("bad value")) end)
  ok, e = pcall(err.result, err, 30)
  check("an exception object comes back as itself", not ok and ValueError:is(e) and e.message == "bad value", e)
  check("exception() gives it", ValueError:is(err:exception()))
  ok, e = pcall(function() return ex:submit(function() error("plain") end):result(30) end)
  check("a string error comes back with the worker's traceback", not ok and tostring(e):find("plain") and
        tostring(e):find("traceback"), e)
  ok, e = pcall(function() return ex:submit(function(c) return c end, coroutine.create(print)):result(30) end)
  check("arguments that cannot travel fail that future", not ok, e)
  check("... and the executor goes on", ex:submit(pid_and, 7):result(30) ~= nil)
  ok, e = pcall(function() return ex:submit(function() return coroutine.create(print) end):result(30) end)
  check("a result that cannot travel fails that future", not ok and tostring(e):find("could not be sent back"), e)
  ok, e = pcall(ex.submit, ex, 42)
  check("submit of a non-callable is a TypeError", not ok and TypeError:is(e), e)

  -- shutdown with cancel_futures: the tasks no worker took are cancelled
  local slow = {}
  for i = 1, 30 do slow[i] = ex:submit(function() time.sleep(0.05); return "done" end) end
  time.sleep(0.2)
  ex:shutdown{ wait = true, cancel_futures = true }
  local cancelled, finished = 0, 0
  for i = 1, 30 do
    if slow[i]:cancelled() then cancelled = cancelled + 1
    elseif slow[i]:result(0) == "done" then finished = finished + 1 end
  end
  check("shutdown{cancel_futures = true} cancels what was queued, the rest is done",
        cancelled > 0 and finished > 0 and cancelled + finished == 30, cancelled .. " " .. finished)
  ok, e = pcall(ex.submit, ex, print)
  check("submit after shutdown is a RuntimeError", not ok and RuntimeError:is(e) and tostring(e):find("after shutdown"), e)

  -- <close>, and a failing initializer breaks the executor
  do
    local ex2 <close> = mpif.MPIPoolExecutor{ max_workers = 1 }
    check("a second executor", ex2:submit(pid_and, 1):result(30) ~= nil)
  end
  local bad = mpif.MPIPoolExecutor{ max_workers = 1, initializer = function() error("no init") end }
  ok, e = pcall(function() return bad:submit(pid_and, 1):result(30) end)
  check("a failing initializer: futures fail with BrokenExecutor", not ok and futures.BrokenExecutor:is(e), e)
  bad:shutdown()
  check("the end", true)
end
]]

do
  local r = mpit.run(SPAWNED, nil, { timeout = 120 })
  t.is(r.status, 0, "MPIPoolExecutor on spawned workers: the program ends well")
  mpit.report(t, r, 28, "spawned workers")
  t.like(r.stderr, "Exception in initializer:.-no init", "the failed initializer is reported on stderr")
end

-- A worker killed while it holds tasks: every pending future fails with
-- BrokenExecutor, soon, and so does submit; the program still ends.
do
  local r = mpit.run([[
local mpif = require "mpi.futures"
local futures = require "concurrent.futures"
local time = require "time"
if __name__ == "__main__" then
  local ex = mpif.MPIPoolExecutor{ max_workers = 2 }
  local pids = {}
  for _, w in ipairs(ex._workers) do pids[#pids + 1] = w.pid end
  io.stdout:write("WORKERS ", table.concat(pids, " "), "\n")
  local fs = {}
  for i = 1, 20 do
    fs[i] = ex:submit(function(x)
      if x == 5 then os.execute("kill -9 " .. os.getpid()) end
      time.sleep(0.3)
      return x
    end, i)
  end
  local t0 = time.monotonic()
  local broken, other = 0, 0
  for i = 1, 20 do
    local ok, e = pcall(fs[i].result, fs[i], 30)
    if not ok and futures.BrokenExecutor:is(e) then broken = broken + 1
    elseif not ok then other = other + 1; io.stderr:write(tostring(e), "\n") end
  end
  local waited = time.monotonic() - t0
  check("the futures of the dead worker fail with BrokenExecutor", broken >= 15, broken)
  check("... none hangs or fails otherwise", other == 0, other)
  check("... within seconds", waited < 10, waited)
  local ok, e = pcall(ex.submit, ex, print)
  check("submit raises BrokenExecutor", not ok and futures.BrokenExecutor:is(e), e)
  ex:shutdown()
  check("shutdown returns", true)
end
]], nil, { timeout = 90 })
  t.is(r.status, 0, "a killed worker: the program still ends with status 0")
  t.ok(r.elapsed < 60, "... and does not hang (" .. math.floor(r.elapsed) .. " s)")
  mpit.report(t, r, 5, "killed worker")
  -- the workers are gone (or dead, waiting to be reaped)
  local pids = {}
  for pid in (r.stdout:match("WORKERS ([%d ]+)") or ""):gmatch("%d+") do pids[#pids + 1] = pid end
  local left = {}
  for _ = 1, 20 do
    left = {}
    for _, pid in ipairs(pids) do
      local f = io.open("/proc/" .. pid .. "/stat")
      local st = f and f:read("l")
      if f then f:close() end
      if st and not st:match("^%d+ %b() [ZX]") then left[#left + 1] = pid end
    end
    if #left == 0 then break end
    os.execute("sleep 0.25")
  end
  t.is(#pids, 2, "the two workers' pids were known")
  t.is(table.concat(left, " "), "", "no worker is left behind")
end

-- The workers of mpiexec: gilua -m mpi.futures script.lua.
do
  local r = mpit.run([[
local mpi = require "mpi"
local mpif = require "mpi.futures"
if __name__ == "__main__" then
  check("rank 0 runs the script", mpi.COMM_WORLD.rank == 0 and mpi.COMM_WORLD.size == 3)
  check("its arguments", arg[1] == "one" and arg[2] == "two", tostring(arg[1]))
  local ok, e = pcall(mpif.MPIPoolExecutor, {max_workers = 3})
  check("more workers than mpiexec started is a ValueError", not ok and ValueError:is(e), e)
  local ex = mpif.MPIPoolExecutor()
  check("every other rank is a worker", ex.num_workers == 2)
  ok, e = pcall(mpif.MPIPoolExecutor)
  check("one executor at a time", not ok and RuntimeError:is(e), e)
  local ranks = {}
  for _, r in ipairs(ex:map(function() return mpi.COMM_WORLD.rank end, {1, 2, 3, 4, 5, 6, 7, 8})) do ranks[r] = true end
  check("the tasks run on ranks 1 and 2", ranks[1] and ranks[2] and not ranks[0])
  ex:shutdown()
  local ex2 = mpif.MPIPoolExecutor{max_workers = 1}
  check("after shutdown, the workers serve the next executor", ex2:submit(function(x) return x + 1 end, 1):result(30) == 2)
  -- left running: exit shuts it down and lets the workers go
end
]], 3, { flags = { "-m", "mpi.futures" }, args = { "one", "two" }, timeout = 90 })
  t.is(r.status, 0, "mpiexec -n 3 gilua -m mpi.futures script.lua ends well")
  mpit.report(t, r, 7, "-m mpi.futures")

  r = mpit.run('error("the script fails")\n', 3, { flags = { "-m", "mpi.futures" }, timeout = 60, plain = true })
  t.isnt(r.status, 0, "a script that fails under -m mpi.futures: mpiexec fails")
  t.like(r.stderr, "the script fails", "... with the script's error")
  t.ok(r.elapsed < 50, "... without waiting for the workers for ever")
end

-- MPICommExecutor: every rank but the root serves.
do
  local r = mpit.run([[
local mpi = require "mpi"
local mpif = require "mpi.futures"
local me = mpi.COMM_WORLD.rank
do
  local ex <close> = mpif.MPICommExecutor(mpi.COMM_WORLD, 1)
  if me == 1 then
    check("the root gets the executor", ex ~= nil and ex.num_workers == 2)
    local got = ex:map(function(x) return x * 10 + mpi.COMM_WORLD.rank end, {1, 2, 3, 4, 5, 6})
    local fromroot = false
    for _, v in ipairs(got) do if v % 10 == 1 then fromroot = true end end
    check("tasks run on the other ranks", #got == 6 and not fromroot, table.concat(got, ","))
  else
    check("the other ranks get nil once the root is done", ex == nil)
  end
end
check("every rank goes on afterwards", mpi.COMM_WORLD:allreduce(1) == 3)
local ok, e = pcall(mpif.MPICommExecutor, mpi.COMM_WORLD, 7)
check("a root out of range is a ValueError", not ok and ValueError:is(e), e)
]], 3, { timeout = 90 })
  t.is(r.status, 0, "MPICommExecutor on 3 ranks ends well")
  mpit.report(t, r, 10, "MPICommExecutor")
end

-- A traced program: its spawned workers trace too, beside it.
do
  local dir = t.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. t.shquote(dir))
  local r = mpit.run([[
local mpif = require "mpi.futures"
if __name__ == "__main__" then
  local ex <close> = mpif.MPIPoolExecutor{ max_workers = 2 }
  local s = 0
  for _, v in ipairs(ex:map(function(n) local x = 0 for i = 1, n do x = x + i end return x end, {1e5, 1e5, 1e5, 1e5})) do s = s + v end
  print(s)
end
]], nil, { flags = { "--gil-trace=" .. dir .. "/main.json" }, plain = true, timeout = 60 })
  t.is(r.status, 0, "a traced program with an MPIPoolExecutor runs")
  local gil = require "gil"
  local files = { dir .. "/main.json", dir .. "/main-worker0.json", dir .. "/main-worker1.json" }
  local all = true
  for _, f in ipairs(files) do all = all and (t.slurp(f) or ""):find('^{"traceEvents":%[') ~= nil end
  t.ok(all, "each worker wrote its trace beside the program's (main-worker0.json, main-worker1.json)")
  local ok, n, k = pcall(gil.merge_traces, dir .. "/all.json", files)
  t.ok(ok and k == 3 and n > 0, "... and the three merge into one")
  os.execute("rm -rf " .. t.shquote(dir))
end

-- From gilua -e (no script): the workers have no main script to load.
do
  local p = io.popen(("%s timeout -s KILL 60 %s -e %s 2>&1"):format(mpit.env(), t.shquote(t.gilua()),
    t.shquote('local mpif = require "mpi.futures"; local ex = mpif.MPIPoolExecutor{max_workers = 1}; ' ..
              'print("answer", ex:submit(function(x) return x * 2 end, 21):result()); ex:shutdown()')))
  local out = p:read("a")
  p:close()
  t.like(out, "answer\t42", "an executor made in gilua -e works (no script to load in the workers)")
end

t.done_testing()
