#!/usr/bin/env gilua
-- threading.Thread: construction, subclasses, start/join/is_alive, names,
-- idents, daemon flag, and the module-level thread functions.
local t = require "tap"
local threading = require "threading"
local time = require "time"
local util = require "support.util"

-- Thread{target, args, kwargs, name, daemon} ---------------------------------
do
  local got
  local th = threading.Thread{
    target = function(...) got = table.pack(...) end,
    args = {1, "two", 3.5}, name = "w1", daemon = true,
  }
  t.is(th.name, "w1", "name from the options table")
  t.is(th.daemon, true, "daemon from the options table")
  t.is(th.ident, nil, "ident is nil before start")
  t.is(th:is_alive(), false, "not alive before start")
  th:start()
  th:join()
  t.ok(got ~= nil, "target ran")
  t.is(got and got.n, 3, "target got three arguments")
  t.ok(got and got[1] == 1 and got[2] == "two" and got[3] == 3.5,
       "positional args in order")
  t.is(th:is_alive(), false, "not alive after join")
end

do -- args with holes: a table.pack'ed array keeps its nils
  local got
  local th = threading.Thread{ target = function(...) got = table.pack(...) end,
                               args = table.pack(nil, 2, nil) }
  th:start(); th:join()
  t.is(got and got.n, 3, "args with nils: n respected")
  t.ok(got and got[1] == nil and got[2] == 2 and got[3] == nil, "args with nils: values")
end

do -- kwargs: one extra last argument
  local a1, kw
  local th = threading.Thread{ target = function(a, k) a1, kw = a, k end,
                               args = {"x"}, kwargs = { color = "red" } }
  th:start(); th:join()
  t.is(a1, "x", "args before kwargs")
  t.is(kw and kw.color, "red", "kwargs passed as the last argument")
end

do -- args with nils (their n) before kwargs; the same for a Timer
  local got
  local th = threading.Thread{ target = function(...) got = table.pack(...) end,
                               args = {n = 3, 1, nil, 3}, kwargs = {k = "v"} }
  th:start(); th:join()
  t.ok(got.n == 4 and got[1] == 1 and got[2] == nil and got[3] == 3 and got[4].k == "v",
       "args {n = 3, 1, nil, 3} and kwargs: four arguments, the nil kept")
  local tm = threading.Timer(0.01, function(...) got = table.pack(...) end,
                             {n = 2, nil, 2}, {k = "w"})
  tm:start(); tm:join()
  t.ok(got.n == 3 and got[1] == nil and got[2] == 2 and got[3].k == "w",
       "Timer: args with a nil and kwargs, as a Thread's")
end

do -- positional form, Python's order: group, target, name, args
  local seen
  local th = threading.Thread(nil, function(x) seen = x end, "posname", {42})
  t.is(th.name, "posname", "positional name")
  th:start(); th:join()
  t.is(seen, 42, "positional target and args")
end

-- default names and daemon inheritance
do
  local th = threading.Thread{ target = function() end }
  t.like(th.name, "^Thread%-%d+", "default name is Thread-N")
  local th2 = threading.Thread{ target = function() end }
  t.isnt(th.name, th2.name, "default names differ")
  t.is(th.daemon, false, "daemon defaults to false in the main thread")
  local inner
  local d = threading.Thread{ daemon = true, target = function()
    local c = threading.Thread{ target = function() end }
    inner = c.daemon
  end }
  d:start(); d:join()
  t.is(inner, true, "daemon is inherited from the creating thread")
end

-- The DESIGN's MonThread example, verbatim (with somme defined) -------------
local function somme(n)
  local s = 0
  for i = 1, n do s = s + i end
  return s
end

do
  local MonThread = threading.Thread:extend()
  function MonThread:init(nom)
    threading.Thread.init(self, {name = nom})
    self.resultat = nil
  end
  function MonThread:run() self.resultat = somme(10000000) end
  local t_ = MonThread("calc"); t_:start(); t_:join(); print("# " .. tostring(t_.resultat))

  t.is(t_.resultat, 50000005000000, "subclass run() stored its result")
  t.is(t_.name, "calc", "subclass init passed the name")
  t.ok(threading.Thread:is(t_), "a subclass instance is a Thread")
  t.ok(MonThread:is(t_), "and an instance of its class")
  t.is(t_:is_alive(), false, "subclass thread finished")
end

-- start twice, join misuse ----------------------------------------------------
do
  local th = threading.Thread{ target = function() end }
  t.raises(function() th:join() end, RuntimeError, "join before start: RuntimeError")
  th:start()
  t.raises(function() th:start() end, RuntimeError, "start twice: RuntimeError")
  th:join()
  t.raises(function() th:start() end, RuntimeError, "start after the end: RuntimeError")
  t.raises(function() threading.current_thread():join() end, RuntimeError,
           "joining the current thread: RuntimeError")
  local err
  local me = threading.Thread{ target = function()
    local ok, e = pcall(function() threading.current_thread():join() end)
    err = e
  end }
  me:start(); me:join()
  t.ok(RuntimeError:is(err), "a thread joining itself: RuntimeError")
end

-- join(timeout), is_alive ------------------------------------------------------
do
  local release = false
  local th = threading.Thread{ target = function()
    while not release do time.sleep(0.01) end
  end }
  th:start()
  t.is(th:is_alive(), true, "alive while running")
  local dt = util.timed(function() th:join(0.2) end)
  t.between(dt, 0.15, 1.5, "join(0.2) on a running thread returns after its timeout")
  t.is(th:is_alive(), true, "still alive after a timed-out join")
  dt = util.timed(function() th:join{timeout = 0.1} end)
  t.between(dt, 0.07, 1.5, "join{timeout = 0.1} waits its timeout too")
  local ticks, dtj = util.ticks_during(th.join, th, 0.3)
  t.ok(ticks >= 5, "join(timeout) releases the GIL: another thread ticked (" .. ticks .. ")")
  t.between(dtj, 0.27, 2, "join(0.3) honoured its timeout")
  release = true
  dt = util.timed(function() th:join(5) end)
  t.ok(dt < 2, "join(5) returns as soon as the thread ends")
  t.is(th:is_alive(), false, "not alive after the end")
  dt = util.timed(function() th:join(0) end)
  t.ok(dt < 0.5, "join on a finished thread returns at once")
end

-- ident, native_id, current_thread, get_ident ---------------------------------
do
  local inside = {}
  local th = threading.Thread{ name = "idcheck", target = function()
    local me = threading.current_thread()
    inside.cur = me
    inside.name = me.name
    inside.ident = threading.get_ident()
    inside.native = threading.get_native_id()
    inside.pid = os.getpid()
  end }
  th:start(); th:join()
  t.ok(math.type(th.ident) == "integer", "ident is an integer after start")
  t.ok(math.type(th.native_id) == "integer" and th.native_id > 0, "native_id is a positive integer")
  t.is(inside.cur, th, "current_thread() in the thread is the Thread object")
  t.is(inside.name, "idcheck", "... with its name")
  t.is(inside.ident, th.ident, "get_ident() in the thread equals t.ident")
  t.is(inside.native, th.native_id, "get_native_id() in the thread equals t.native_id")
  t.isnt(th.ident, threading.get_ident(), "the thread's ident differs from main's")
  t.isnt(th.native_id, threading.get_native_id(), "the thread's native id differs from main's")
  t.is(inside.pid, os.getpid(), "same process")
end

-- main_thread, current_thread in main -----------------------------------------
do
  local main = threading.main_thread()
  t.is(main.name, "MainThread", "main_thread().name")
  t.is(threading.current_thread(), main, "current_thread() in main is main_thread()")
  t.is(main.ident, threading.get_ident(), "main ident is get_ident() in main")
  t.is(main:is_alive(), true, "main thread is alive")
  t.is(main.daemon, false, "main thread is not a daemon")
  local seen
  local th = threading.Thread{ target = function() seen = threading.main_thread() end }
  th:start(); th:join()
  t.is(seen, main, "main_thread() is the same object from another thread")
end

-- active_count and enumerate ---------------------------------------------------
do
  local base = threading.active_count()
  t.is(base, 1, "only the main thread at first")
  local go = threading.Event()
  local ths = {}
  for i = 1, 3 do
    ths[i] = threading.Thread{ name = "enum" .. i, target = function() go:wait() end }
    ths[i]:start()
  end
  t.is(threading.active_count(), base + 3, "active_count counts running threads")
  local names = {}
  for _, x in ipairs(threading.enumerate()) do names[x.name] = true end
  t.ok(names.MainThread and names.enum1 and names.enum2 and names.enum3,
       "enumerate() lists main and the running threads")
  t.is(#threading.enumerate(), base + 3, "enumerate() has one entry per thread")
  go:set()
  for i = 1, 3 do ths[i]:join() end
  t.is(threading.active_count(), base, "finished threads are no longer counted")
  local still = false
  for _, x in ipairs(threading.enumerate()) do
    if x.name:find("^enum") then still = true end
  end
  t.ok(not still, "finished threads leave enumerate()")
end

-- threads run concurrently (and share globals) ----------------------------------
do
  shared_table = {}
  local ths = {}
  for i = 1, 8 do
    ths[i] = threading.Thread{ args = {i}, target = function(k)
      time.sleep(0.05)
      shared_table[k] = k * k
    end }
    ths[i]:start()
  end
  for i = 1, 8 do ths[i]:join() end
  local okall = true
  for i = 1, 8 do okall = okall and shared_table[i] == i * i end
  t.ok(okall, "eight threads wrote into a shared global table")
end

-- bad arguments are clear errors --------------------------------------------------
t.raises(function() threading.Thread{ target = 42 } end, TypeError,
         "a non-callable target: TypeError")
t.raises(function() threading.Thread{ bogus = 1 } end, TypeError,
         "an unknown option: TypeError")

-- Renaming a running thread renames it in gil.stats() too -----------------------
do
  local gil = require "gil"
  local ev = threading.Event()
  local th = threading.Thread{ name = "before", target = function() ev:wait() end }
  th:start()
  util.wait_until(function()
    for _, s in ipairs(gil.stats().threads) do if s.name == "before" then return true end end
  end, 5)
  th.name = "renamed"
  local seen = {}
  for _, s in ipairs(gil.stats().threads) do seen[s.name] = true end
  t.ok(seen.renamed and not seen.before, "t.name = x on a running thread shows in gil.stats()")
  t.is(th.name, "renamed", "... and reads back")
  t.like(tostring(th), "^<Thread%(renamed, started", "... and in its repr")
  ev:set(); th:join()
  local un = threading.Thread{ name = "idle" }
  un.name = 42
  t.is(un.name, "42", "renaming a thread not started: the name as a string")
end

-- join() reaps the OS thread; ident and native_id are there after start() ------
do
  local lingering = 0
  for _ = 1, 100 do
    local th = threading.Thread{ target = function() end }
    th:start()
    local nid = th.native_id
    th:join()
    local f = io.open("/proc/self/task/" .. nid .. "/stat")
    if f then lingering = lingering + 1; f:close() end
  end
  t.is(lingering, 0, "after join() the thread's OS thread is gone (100 threads)")
  local ev = threading.Event()
  local th = threading.Thread{ target = function() ev:wait() end }
  th:start()
  t.ok(math.type(th.ident) == "integer" and math.type(th.native_id) == "integer",
       "ident and native_id read right after start()")
  t.is(th:is_alive(), true, "alive right after start()")
  ev:set(); th:join()
end

-- several threads joining the same thread, with and without timeouts -------------
do
  local ev = threading.Event()
  local target = threading.Thread{ target = function() ev:wait() end }
  target:start()
  local joined, timedout = 0, 0
  local joiners = {}
  for i = 1, 4 do
    joiners[i] = threading.Thread{ target = function()
      if i % 2 == 0 then
        target:join(0.05)
        if target:is_alive() then timedout = timedout + 1 end
      end
      target:join()
      joined = joined + 1
    end }
    joiners[i]:start()
  end
  time.sleep(0.2)
  t.is(timedout, 2, "join(0.05) by two threads times out while the target runs")
  t.is(joined, 0, "... and nobody got through join()")
  ev:set()
  for i = 1, 4 do joiners[i]:join() end
  t.is(joined, 4, "four threads joining one thread all return once it ends")
  t.is(target:is_alive(), false, "... which is then not alive")
  t.is(target:join(), nil, "joining an ended thread again returns at once")
end

-- stack_size, as Python's threading.stack_size ------------------------------------
do
  t.is(threading.stack_size(), 0, "stack_size() is 0 (the system's default) at first")
  t.is(threading.stack_size(256 * 1024), 0, "stack_size(n) returns the previous setting")
  t.is(threading.stack_size(), 256 * 1024, "... and sets it")
  local depth = 0
  local function recurse(n)   -- Lua calls through C (pcall): C stack in use
    if n == 0 then return end
    depth = depth + 1
    pcall(recurse, n - 1)
  end
  local th = threading.Thread{ target = function() recurse(150) end }
  th:start(); th:join()
  t.is(depth, 150, "a thread with a 256 KiB stack runs 150 nested pcalls")
  t.raises(function() threading.stack_size(1000) end, ValueError,
           "stack_size below 32 KiB: ValueError")
  t.raises(function() threading.stack_size("big") end, TypeError,
           "stack_size of a string: TypeError")
  t.is(threading.stack_size(0), 256 * 1024, "stack_size(0) returns to the default")
  t.is(threading.stack_size(), 0, "... which reads 0")
end

t.done_testing()
