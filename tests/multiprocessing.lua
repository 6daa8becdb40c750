#!/usr/bin/env gilua
-- multiprocessing: processes, the serializer, Pipe, Queue, shared memory
-- and locks, Pool, ProcessPoolExecutor.
require("support.util").tsan_allow_fork()

local t = require "tap"
local mp = require "multiprocessing"
local queue = require "queue"
local time = require "time"
local futures = require "concurrent.futures"

local function fdcount()
  local p = io.popen("ls /proc/" .. os.getpid() .. "/fd")
  local n = 0
  for _ in p:lines() do n = n + 1 end
  p:close()
  return n
end

-- serializer
do
  local dumps, loads = mp.dumps, mp.loads
  local v = loads(dumps({ 1, 2.0, "s", true, false, x = { y = 3 } }))
  t.is(math.type(v[1]), "integer", "integers stay integers")
  t.is(math.type(v[2]), "float", "floats stay floats")
  t.is(v.x.y, 3, "nested tables")
  local c = { name = "c" }; c.self = c
  local shared = {}
  local w = loads(dumps({ c, shared, shared }))
  t.ok(w[1].self == w[1], "cycles survive")
  t.ok(w[2] == w[3], "shared references stay shared")
  local k = 10
  local f = loads(dumps(function(x) return x + k end))
  t.is(f(5), 15, "functions travel with their upvalues")
  local g = loads(dumps(function() return string.format("%d", 7) end))
  t.is(g(), "7", "_ENV is the receiver's globals")
  local err = t.raises(function() dumps({ a = { coroutine.create(print) } }) end, TypeError,
                       "a coroutine cannot travel")
  t.like(tostring(err), "coroutine.*value%.a%[1%]", "the error names where the value is")
  t.raises(function() dumps(io.stdin:lines()) end, TypeError, "a C closure cannot travel")
  for _, bad in ipairs({ "", "\xc5", "\xc5\x01", "\xc5\x01\x06\x05", "\xc5\x01\x09\x10\x00\x00\x00",
                         "\xc5\x01\x08\x09", "garbage", "\xc5\x01\x05\xff\xff\xff\xff\x0f" }) do
    t.raises(function() loads(bad) end, ValueError, "malformed input is a ValueError: " .. #bad)
  end
  local blob = dumps(function() return 1 end)
  local corrupt = blob:sub(1, 20) .. string.char((blob:byte(21) + 1) % 256) .. blob:sub(22)
  t.raises(function() loads(corrupt) end, ValueError, "corrupted bytecode is refused")
  -- mutated and truncated messages: errors, never a crash
  local samples = { dumps({ 1, 2.5, "x", { a = { b = true } } }), dumps(function(x) return x + k end),
                    dumps(ValueError("boom")), dumps({ c, c }) }
  math.randomseed(7)
  local survived = true
  for _ = 1, 5000 do
    local m = samples[math.random(#samples)]
    local pos = math.random(#m)
    if math.random(2) == 1 then
      m = m:sub(1, pos - 1) .. string.char(math.random(0, 255)) .. m:sub(pos + 1)
    else
      m = m:sub(1, pos)
    end
    local ok, err = pcall(loads, m)
    if not ok and not ValueError:is(err) and type(err) ~= "string" then survived = false end
  end
  t.ok(survived, "5000 mutated messages: values or errors, no crash")
  local byname = loads(dumps({ string, string, math.floor, math.floor, { 1 }, mp.Process, mp.Process }))
  t.ok(byname[1] == string and byname[2] == string and byname[4] == math.floor
       and byname[5][1] == 1 and byname[7] == mp.Process,
       "values sent by name, repeated, beside tables")
  local e = loads(dumps(ValueError("x")))
  t.ok(ValueError:is(e), "exception classes travel by name")
end

-- processes
do
  local q = mp.Process{ target = function(a, b, c, kw)
      os.exit((a == 1 and b == nil and c == 3 and kw.k == "v") and 0 or 9)
    end, args = { n = 3, 1, nil, 3 }, kwargs = { k = "v" } }
  q:start(); q:join()
  t.is(q.exitcode, 0, "Process: args with a nil (their n), then kwargs as the last argument")
  local p = mp.Process{ target = function(a, b) os.exit(a + b == 3 and 0 or 9) end, args = { 1, 2 } }
  t.is(p.name:match("^Process%-"), "Process-", "default name")
  p:start(); p:join()
  t.is(p.exitcode, 0, "exitcode 0")
  local p2 = mp.Process{ target = function() error("boom") end }
  p2:start(); p2:join()
  t.is(p2.exitcode, 1, "exitcode 1 after an uncaught error")
  local p3 = mp.Process{ target = function() time.sleep(30) end }
  p3:start()
  t.ok(p3:is_alive(), "is_alive while running")
  local t0 = time.monotonic()
  p3:join(0.2)
  t.between(time.monotonic() - t0, 0.15, 5, "join(timeout) returns after the timeout")
  t.is(p3.exitcode, nil, "no exitcode while running")
  p3:terminate(); p3:join()
  t.is(p3.exitcode, -15, "terminate: -SIGTERM")
  local p4 = mp.Process{ target = function() time.sleep(30) end }
  p4:start(); p4:kill(); p4:join()
  t.is(p4.exitcode, -9, "kill: -SIGKILL")
  t.ok(not p4:is_alive(), "not alive after join")
  p4:close()
  t.raises(function() p4:is_alive() end, ValueError, "closed process")
  local p5 = mp.Process{ target = function() error(SystemExit(7)) end }
  p5:start(); p5:join()
  t.is(p5.exitcode, 7, "SystemExit(code)")

  local Sub = mp.Process:extend()
  function Sub:init(x) mp.Process.init(self, { name = "sub" }); self.x = x end
  function Sub:run() os.exit(self.x) end
  local s = Sub(5); s:start(); s:join()
  t.is(s.exitcode, 5, "subclass overriding run")
  t.is(s.name, "sub", "name")

  local a, b = mp.Pipe()
  local p6 = mp.Process{ target = function()
    local cp = mp.current_process()
    b:send({ cp.name, cp.pid, mp.parent_process().pid, os.getpid() })
  end, name = "worker-x" }
  p6:start()
  local info = a:recv()
  p6:join()
  t.is(info[1], "worker-x", "current_process().name in the child")
  t.is(info[2], info[4], "current_process().pid in the child")
  t.is(info[3], os.getpid(), "parent_process().pid")
  t.is(mp.current_process().name, "MainProcess", "MainProcess")
  t.is(mp.parent_process(), nil, "no parent in the main process")
  t.ok(mp.cpu_count() >= 1, "cpu_count")
  a:close(); b:close()
end

-- nothing printed twice at fork
do
  local out = os.tmpname()
  local script = os.tmpname()
  local f = io.open(script, "w")
  f:write([[
local mp = require "multiprocessing"
io.write("before ")
local p = mp.Process{target = function() io.write("child ") end}
p:start(); p:join()
io.write("after\n")
]])
  f:close()
  local gilua = os.getenv("GILUA") or "gilua"
  os.execute(gilua .. " " .. script .. " > " .. out)
  local r = io.open(out):read("a")
  t.is(r, "before child after\n", "buffered output is not duplicated")
  os.remove(out); os.remove(script)
end

-- pipes
do
  local a, b = mp.Pipe()
  local p = mp.Process{ target = function()
    while true do
      local v = b:recv()
      if v == nil then break end
      b:send(v)
    end
  end }
  p:start()
  local c = { 1, 2 }; c.c = c
  local sh = {}
  a:send({ c, sh, sh })
  local r = a:recv()
  t.ok(r[1].c == r[1] and r[2] == r[3], "cycles and shared references through a Pipe")
  a:send("hello")
  t.is(a:recv(), "hello", "a string round trip")
  t.ok(not a:poll(0.05), "poll times out when nothing is there")
  a:send(nil)
  p:join()
  b:close()
  t.raises(function() a:recv() end, EOFError, "EOFError on a closed peer")
  t.raises(function() a:send(print == print and coroutine.create(print)) end, TypeError,
           "unserializable values are refused before sending")
  a:close()
  local r1, w1 = mp.Pipe(false)
  w1:send_bytes("xabcx", 1, 3)
  t.is(r1:recv_bytes(), "abc", "simplex pipe, send_bytes with offset and size")
  t.raises(function() r1:send(1) end, OSError, "read end cannot send")
  r1:close(); w1:close()
end

-- queues
do
  local q = mp.Queue()
  local p = mp.Process{ target = function()
    for i = 1, 1000 do q:put(i) end
    q:put(nil)
  end }
  p:start()
  local n, s = 0, 0
  while true do
    local v = q:get()
    if v == nil then break end
    n, s = n + 1, s + v
  end
  p:join()
  t.is(n, 1000, "1000 items from a child")
  t.is(s, 500500, "in full")
  t.raises(function() q:get(true, 0.1) end, queue.Empty, "get timeout: queue.Empty")
  t.raises(function() q:get(false) end, queue.Empty, "get_nowait on empty")
  local bq = mp.Queue(2)
  bq:put(1); bq:put(2)
  t.raises(function() bq:put(3, true, 0.1) end, queue.Full, "put timeout: queue.Full")
  t.is(bq:qsize(), 2, "qsize")
  for i = 1, 5000 do q:put(i) end
  local m = 0
  for _ = 1, 5000 do m = m + q:get() end
  t.is(m, 12502500, "one process can put many then get them (feeder thread)")
  local jq = mp.JoinableQueue()
  local w = mp.Process{ target = function()
    while true do
      local x = jq:get()
      jq:task_done()
      if x == nil then break end
    end
  end }
  w:start()
  for i = 1, 10 do jq:put(i) end
  jq:put(nil)
  jq:join()
  t.ok(true, "JoinableQueue.join returns once every item is done")
  w:join()
  local sq = mp.SimpleQueue()
  sq:put({ a = 1 })
  t.is(sq:get().a, 1, "SimpleQueue")
end

-- shared memory and locks
do
  local v = mp.Value("i", 0)
  local arr = mp.Array("d", 4)
  local ps = {}
  for i = 1, 4 do
    ps[i] = mp.Process{ target = function()
      for _ = 1, 500 do
        local _ <close> = v:get_lock():acquire()
        v.value = v.value + 1
      end
      arr[i] = i * 1.5
    end }
    ps[i]:start()
  end
  for i = 1, 4 do ps[i]:join() end
  t.is(v.value, 2000, "Value with get_lock across processes")
  t.is(#arr, 4, "# of an Array")
  t.is(arr[4], 6.0, "Array written by a child")
  t.raises(function() return arr[5] end, IndexError, "Array bounds")
  local rv = mp.RawValue("d", 1.5)
  t.is(rv.value, 1.5, "RawValue")
  t.raises(function() mp.Value("z", 1) end, TypeError, "bad typecode")
  local lock = mp.Lock()
  t.ok(lock:acquire(), "Lock acquire")
  t.is(lock:acquire(false), false, "Lock is not recursive")
  lock:release()
  t.raises(function() lock:release() end, ValueError, "release an unlocked Lock")
  local sem = mp.BoundedSemaphore(1)
  t.raises(function() sem:release() end, ValueError, "BoundedSemaphore over-release")
  local ev = mp.Event()
  local pe = mp.Process{ target = function() time.sleep(0.1); ev:set() end }
  pe:start()
  t.ok(ev:wait(10), "Event set by a child")
  pe:join()
  local cond = mp.Condition()
  local flag = mp.Value("i", 0)
  local pc = mp.Process{ target = function()
    cond:acquire(); flag.value = 1; cond:notify(); cond:release()
  end }
  cond:acquire()
  pc:start()
  local ok = cond:wait_for(function() return flag.value == 1 end, 10)
  cond:release()
  t.ok(ok, "Condition notified by a child")
  pc:join()
  local bar = mp.Barrier(2)
  local pb = mp.Process{ target = function() bar:wait() end }
  pb:start()
  t.ok(bar:wait(10) >= 0, "Barrier between two processes")
  pb:join()
end

-- Pool
do
  local pool <close> = mp.Pool(2)
  local function sq(x) return x * x end
  t.is(table.concat(pool:map(sq, { 1, 2, 3, 4 }), ","), "1,4,9,16", "map")
  t.is(table.concat(pool:starmap(function(a, b) return a * b end, { { 2, 3 }, { 4, 5 } }), ","), "6,20", "starmap")
  local r = pool:map_async(sq, { 5 })
  t.is(r:get(10)[1], 25, "map_async get")
  t.ok(r:ready() and r:successful(), "ready, successful")
  local got
  local ar = pool:apply_async(sq, { 3 }, function(x) got = x end)
  t.is(ar:get(10), 9, "apply_async")
  t.is(got, 9, "callback")
  local s = 0
  for x in pool:imap_unordered(sq, { 1, 2, 3 }) do s = s + x end
  t.is(s, 14, "imap_unordered")
  local err = t.raises(function() pool:apply(function() error(ValueError("in worker")) end) end,
                       ValueError, "an error in a worker re-raises in the parent")
  t.like(tostring(err and err.traceback), "worker_main", "with the worker's traceback")
  local slow = pool:apply_async(function() time.sleep(5) end)
  t.raises(function() slow:get(0.1) end, mp.TimeoutError, "get(timeout)")
  local dead = pool:apply_async(function() os.execute("kill -9 " .. mp.current_process().pid) end)
  t.raises(function() dead:get(20) end, mp.pool.WorkerLostError, "a worker killed with SIGKILL fails its task, no hang")
  t.is(table.concat(pool:map(sq, { 1, 2, 3 }), ","), "1,4,9", "the pool goes on")
  local p2 = mp.Pool{ processes = 1, initializer = function(x) INITED = x end, initargs = { 42 },
                      maxtasksperchild = 1 }
  t.is(p2:apply(function() return INITED end), 42, "initializer")
  t.is(p2:apply(function() return INITED end), 42, "maxtasksperchild replaces the worker")
  p2:close(); p2:join()
end

-- with() on a multiprocessing lock: the value, errors passed on, released after
do
  local l = mp.Lock()
  t.is(l:with(function(a) return a + 1 end, 1), 2, "Lock:with returns fn's result")
  local ok = pcall(l.with, l, function() error("inside") end)
  t.ok(not ok, "... passes fn's error on")
  t.ok(l:acquire(false) == l, "... and the lock is free afterwards")
  l:release()
end

-- ProcessPoolExecutor
do
  local ex = futures.ProcessPoolExecutor{ max_workers = 2 }
  local fs = {}
  for i = 1, 20 do fs[i] = ex:submit(function(x) return x * 2 end, i) end
  local s = 0
  for f in futures.as_completed(fs) do s = s + f:result() end
  t.is(s, 420, "submit and as_completed")
  local done = futures.wait(fs)
  local n = 0
  for _ in next, done do n = n + 1 end
  t.is(n, 20, "wait")
  t.is(table.concat(ex:map(function(x) return -x end, { 1, 2 }, { chunksize = 2 }), ","), "-1,-2", "map")
  local bad = ex:submit(function() os.execute("kill -9 " .. mp.current_process().pid) end)
  t.raises(function() bad:result() end, futures.BrokenProcessPool, "BrokenProcessPool")
  t.raises(function() ex:submit(print) end, futures.BrokenProcessPool, "submit after broken")
  ex:shutdown()
  local ex2 <close> = futures.ProcessPoolExecutor{ max_workers = 1, initializer = function() INIT2 = 1 end }
  t.is(ex2:submit(function() return INIT2 end):result(), 1, "executor initializer")
  local ex3 = futures.ProcessPoolExecutor{ max_workers = 1 }
  local slow = ex3:submit(function() require("time").sleep(0.3); return "slow" end)
  local queued = {}
  for i = 1, 6 do queued[i] = ex3:submit(function() return i end) end
  require("time").sleep(0.1)
  ex3:shutdown{ wait = true, cancel_futures = true }
  local cancelled, left = 0, 0
  for i = 1, 6 do
    if queued[i]:cancelled() then cancelled = cancelled + 1 end
    if not queued[i]:done() then left = left + 1 end
  end
  t.is(slow:result(), "slow", "shutdown{cancel_futures}: the running task finishes")
  t.ok(cancelled >= 1, "... those no worker took are cancelled (" .. cancelled .. " of 6)")
  t.is(left, 0, "... and none is left pending")
end

-- Manager
do
  local manager = mp.Manager()
  local d, l = manager:dict(), manager:list()
  local p = mp.Process{ target = function() d["modifié"] = true; l:append(42); l:append({ x = 1 }) end }
  p:start(); p:join()
  t.is(d["modifié"], true, "Manager dict written by a child")
  t.is(l[1], 42, "Manager list written by a child")
  t.is(l[2].x, 1, "tables travel into the manager")
  t.is(#l, 2, "# of a list proxy")
  t.is(tostring(d), "{'modifié': True}", "print of a dict proxy shows its contents")
  t.is(tostring(l), "[42, {'x': 1}]", "print of a list proxy")
  local ns = manager:Namespace()
  ns.x = 3
  t.is(ns.x, 3, "Namespace")
  local q = manager:Queue()
  q:put(nil)
  t.is(q:get(), nil, "manager Queue carries nil")
  local v = manager:Value("i", 1)
  v.value = v.value + 1
  t.is(v.value, 2, "manager Value")
  local lk = manager:Lock()
  t.ok(lk:acquire(), "manager Lock")
  lk:release()
  t.raises(function() return l[9] end, IndexError, "errors of the server re-raise in the client")
  local mode = io.popen("stat -c %a " .. manager.address):read("l")
  t.is(mode, "600", "the server's socket is private to the user")
  local dmode = io.popen("stat -c %a " .. manager._dir):read("l")
  t.is(dmode, "700", "in a private directory")
  local srv = manager._process
  manager:shutdown()
  t.ok(not srv:is_alive(), "the server stops with the manager")
  t.ok(not io.open(manager.address), "and its socket is gone")
  -- a parent killed without shutdown: its server stops by itself
  local script = os.tmpname()
  local f = io.open(script, "w")
  f:write([[
local mp = require "multiprocessing"
local m = mp.Manager()
print(m._process.pid)
io.stdout:flush()
os.execute("kill -9 " .. os.getpid())
]])
  f:close()
  local pipe = io.popen((os.getenv("GILUA") or "gilua") .. " " .. script .. " 2>/dev/null")
  local spid = tonumber(pipe:read("l"))
  pipe:close()
  os.remove(script)
  local gone = false
  for _ = 1, 50 do
    if not os.execute("kill -0 " .. tostring(spid) .. " 2>/dev/null") then gone = true; break end
    time.sleep(0.1)
  end
  t.ok(spid and gone, "the server of a killed parent stops")
end

-- shared_memory
do
  local shared_memory = require "multiprocessing.shared_memory"
  local shm = shared_memory.SharedMemory{ create = true, size = 16 }
  shm.buf[1] = 42
  shm.buf:write(2, "hello")
  local p = mp.Process{ target = function(name)
    local o = shared_memory.SharedMemory(name)
    o.buf[7] = o.buf[1] + 1
    o:close()
  end, args = { shm.name } }
  p:start(); p:join()
  t.is(shm.buf[7], 43, "SharedMemory attached by name in a child")
  t.is(shm.buf:read(2, 6), "hello", "buf:read")
  t.is(#shm.buf, 16, "# of buf")
  t.raises(function() shm.buf[17] = 1 end, IndexError, "buf bounds")
  t.raises(function() shared_memory.SharedMemory{ name = shm.name, create = true, size = 4 } end,
           FileExistsError, "create an existing block")
  shm:close(); shm:unlink()
  t.raises(function() shared_memory.SharedMemory(shm.name) end, FileNotFoundError, "unlinked")
end

-- more of the API
do
  local pool = mp.Pool(2)
  local errs, oks = {}, {}
  local r = pool:starmap_async(function(a, b) return a + b end, { { 1, 2 }, { 3, 4 } }, nil,
                               function(v) oks[#oks + 1] = v end)
  t.is(table.concat(r:get(10), ","), "3,7", "starmap_async")
  local bad = pool:apply_async(function() error("nope") end, {}, { error_callback = function(e) errs[#errs + 1] = e end })
  bad:wait(10)
  t.ok(bad:ready() and not bad:successful(), "a failed result: ready, not successful")
  t.is(#errs, 1, "error_callback")
  t.ok(#oks == 1 and oks[1][2] == 7, "map callback gets the list")
  local a, b = pool:apply(function() return 1, 2 end)
  t.ok(a == 1 and b == 2, "apply returns every value")
  local order = {}
  for v in pool:imap(function(x) require("time").sleep((5 - x) * 0.02); return x end, { 1, 2, 3, 4 }) do
    order[#order + 1] = v
  end
  t.is(table.concat(order, ","), "1,2,3,4", "imap keeps the order")
  pool:close()
  t.raises(function() pool:map(print, { 1 }) end, ValueError, "a closed pool refuses work")
  pool:join()
  local p2 = mp.Pool(1)
  local long = p2:apply_async(function() require("time").sleep(30) end)
  local t0 = time.monotonic()
  p2:terminate()
  t.ok(time.monotonic() - t0 < 10, "terminate does not wait for running tasks")
  t.raises(function() long:get(5) end, mp.pool.WorkerLostError, "a terminated task fails")

  local q = mp.Queue()
  q:put(1)
  q:close()
  t.raises(function() q:put(2) end, ValueError, "put after close")
  q:join_thread()
  t.ok(true, "join_thread after close")

  local c1, c2 = mp.Pipe()
  c2:send_bytes("abcdef")
  local ready = mp.connection.wait({ c1 }, 5)
  t.is(ready[1], c1, "connection.wait")
  t.raises(function() c1:recv_bytes(3) end, OSError, "recv_bytes over maxlength")
  c1:close(); c2:close()

  local ca = mp.Array("c", "hey")
  t.is(ca.value, "hey", "a c Array reads as a string")
  local raw = mp.RawArray("i", { 1, 2, 3 })
  t.is(#raw, 3, "RawArray")
  local rl = mp.RLock()
  t.ok(rl:acquire() and rl:acquire(), "RLock is recursive")
  rl:release(); rl:release()
  t.raises(function() rl:release() end, AssertionError, "RLock released too often")
  local sem = mp.Semaphore(0)
  local ps = mp.Process{ target = function() sem:release() end }
  ps:start()
  t.ok(sem:acquire(true, 10), "Semaphore released by a child")
  ps:join()
  t.is(sem:acquire(false), false, "Semaphore empty again")
  local bar = mp.Barrier(3)
  local pb = mp.Process{ target = function() pcall(bar.wait, bar) end }
  pb:start()
  t.raises(function() bar:wait(0.2) end, mp.BrokenBarrierError, "Barrier wait times out: broken")
  t.ok(bar.broken, "broken")
  pb:join()
  t.is(pb.exitcode, 0, "the other waiter saw it broken too")
  local pd = mp.Process{ target = function() end, daemon = true }
  t.is(pd.daemon, true, "daemon flag")
  t.raises(function() mp.Process{ target = 5 } end, TypeError, "target must be callable")
  local pn = mp.Process{ target = function() end }
  t.raises(function() pn:join() end, AssertionError, "join before start")
end

-- the spawn start method
do
  local gilua = os.getenv("GILUA") or "gilua"
  local function run(src)
    local script = os.tmpname()
    local f = io.open(script, "w"); f:write(src); f:close()
    local out = os.tmpname()
    local ok = os.execute(gilua .. " " .. script .. " > " .. out .. " 2>&1")
    local r = io.open(out):read("a")
    os.remove(out); os.remove(script)
    return r, ok
  end
  local out = run([[
local mp = require "multiprocessing"
print("load " .. __name__)
GLOBAL_X = 7
local function f(a, b)
  print("child " .. __name__ .. " " .. (a + b) .. " " .. GLOBAL_X .. " " .. mp.current_process().name)
  os.exit(3)
end
if __name__ == "__main__" then
  mp.set_start_method("spawn")
  local p = mp.Process{target = f, args = {1, 2}}
  p:start(); p:join()
  print("exitcode " .. p.exitcode)
  local Sub = mp.Process:extend()
  function Sub:init(x) mp.Process.init(self); self.x = x end
  function Sub:run() print("sub " .. self.x) end
  local s = Sub(9); s:start(); s:join()
  print("sub exitcode " .. s.exitcode)
end
]])
  t.like(out, "^load __main__\n", "spawn: the parent runs as __main__")
  t.like(out, "load __mp_main__\nchild __mp_main__ 3 7 Process%-1\nexitcode 3\n",
         "spawn: the child loads the main script as __mp_main__, then runs the target")
  t.like(out, "sub 9\nsub exitcode 0", "spawn: a subclass travels with its methods")
  do  -- no main script: gilua -e (arg[0] is gilua itself, not a script to load)
    local f = io.popen(t.shquote(t.gilua()) .. [[ -e 'local mp = require "multiprocessing"
local p = mp.get_context("spawn").Process{target = function() print("child ran") end}
p:start(); p:join(); print("exitcode " .. p.exitcode)' 2>&1]])
    local o = f:read("a")
    f:close()
    t.is(o, "child ran\nexitcode 0\n", "spawn from gilua -e: the child does not load gilua's binary as the main script")
  end
  local out2 = run([[
local mp = require "multiprocessing"
mp.set_start_method("spawn")
local p = mp.Process{target = function() end}
p:start(); p:join()
print("exitcode " .. p.exitcode)
]])
  t.like(out2, "RuntimeError: An attempt has been made to start a new process before the\ncurrent process has finished its bootstrapping phase",
         "spawn without the __main__ guard: Python's RuntimeError in the child")
  t.like(out2, "exitcode 1", "and the child exits with 1")
  local out3 = run([[
local mp = require "multiprocessing"
local function echo(conn) conn:send(conn:recv() * 2) end
if __name__ == "__main__" then
  local parent, child = mp.Pipe()
  local p = mp.get_context("spawn").Process{target = echo, args = {child}}
  p:start()
  parent:send(21)
  print("got " .. parent:recv())
  p:join()
end
]])
  t.like(out3, "got 42", "spawn: a Connection passed in the arguments")
  local out4 = run([[
local mp = require "multiprocessing"
local function worker(qin, qout)
  while true do
    local x = qin:get()
    if x == nil then break end
    qout:put(x * x)
  end
end
if __name__ == "__main__" then
  mp.set_start_method("spawn")
  local qin, qout = mp.Queue(), mp.JoinableQueue()
  local ps = {}
  for i = 1, 2 do ps[i] = mp.Process{target = worker, args = {qin, qout}}; ps[i]:start() end
  for i = 1, 10 do qin:put(i) end
  qin:put(nil); qin:put(nil)
  local s = 0
  for _ = 1, 10 do s = s + qout:get() end
  for i = 1, 2 do ps[i]:join() end
  print("sum " .. s)
end
]])
  t.like(out4, "sum 385", "spawn: Queues passed in the arguments")
  local out5 = run([[
local mp = require "multiprocessing"
GLOBAL_K = 10
local function sq(x) return x * x + GLOBAL_K .. ":" .. __name__ end
if __name__ == "__main__" then
  local ctx = mp.get_context("spawn")
  local pool = ctx.Pool(2)
  print("pool " .. table.concat(pool:map(sq, {1, 2, 3}), ","))
  pool:close(); pool:join()
  local futures = require "concurrent.futures"
  local ex = futures.ProcessPoolExecutor{max_workers = 2, mp_context = ctx}
  print("executor " .. ex:submit(sq, 4):result())
  ex:shutdown()
  local m = ctx.Manager()
  local d = m:dict()
  d.a = 5
  print("manager " .. tostring(d.a))
  m:shutdown()
  mp.set_start_method("spawn")
  local p2 = mp.Pool{processes = 1}
  print("default " .. p2:apply(sq, {5}))
  p2:close(); p2:join()
end
]])
  t.like(out5, "pool 11:__mp_main__,14:__mp_main__,19:__mp_main__\n",
         "spawn: ctx.Pool's workers are fresh processes that loaded the main script as __mp_main__")
  t.like(out5, "executor 26:__mp_main__\n", "spawn: ProcessPoolExecutor{mp_context = ctx}")
  t.like(out5, "manager 5\n", "spawn: ctx.Manager()")
  t.like(out5, "default 35:__mp_main__\n", "spawn: Pool under set_start_method(\"spawn\")")
  t.raises(function() mp.dumps(mp.Queue()) end, RuntimeError, "a Queue does not travel otherwise")
  t.raises(function() mp.dumps((mp.Pipe())) end, RuntimeError, "a Connection does not travel otherwise")
  local ctx = mp.get_context("spawn")
  t.is(ctx.get_start_method(), "spawn", "get_context")
  local co = coroutine.create(print)
  t.raises(function() ctx.Process{ target = function() return co end }:start() end, TypeError,
           "spawn: what cannot travel is refused in the parent")
  t.raises(function() mp.dumps(mp.Lock()) end, RuntimeError, "a Lock does not travel otherwise")
  t.raises(function() mp.dumps(mp.Value("i", 1)) end, RuntimeError, "a Value does not travel otherwise")
  local out6 = run([[
local mp = require "multiprocessing"
local function inc(v)
  local l <close> = v:get_lock():acquire()
  v.value = v.value + 1
end
local function sync(lock, rl, sem, bsem, ev, cond, bar, arr, rv, ra)
  lock:acquire(); lock:release()
  rl:acquire(); rl:acquire(); rl:release(); rl:release()
  sem:release(); bsem:acquire()
  ev:wait()
  cond:acquire(); cond:notify_all(); cond:release()
  bar:wait()
  arr[1] = arr[1] + 1; rv.value = 7.5; ra[2] = 9
end
if __name__ == "__main__" then
  local ctx = mp.get_context("spawn")
  local v = mp.Value("i", 0)
  local ps = {}
  for i = 1, 10 do ps[i] = ctx.Process{target = inc, args = {v}}; ps[i]:start() end
  for i = 1, 10 do ps[i]:join() end
  print("counter " .. v.value)
  local lock, rl, sem, bsem, ev = mp.Lock(), mp.RLock(), mp.Semaphore(0), mp.BoundedSemaphore(1), mp.Event()
  local cond, bar = mp.Condition(), mp.Barrier(2)
  local arr, rv, ra = mp.Array("i", {1, 2}), mp.RawValue("d", 0), mp.RawArray("i", 3)
  local p = ctx.Process{target = sync, args = {lock, rl, sem, bsem, ev, cond, bar, arr, rv, ra}}
  p:start()
  sem:acquire()
  ev:set()
  bar:wait()
  p:join()
  print("sync " .. p.exitcode .. " " .. arr[1] .. " " .. rv.value .. " " .. ra[2] .. " " ..
        tostring(bsem:acquire(false)))
end
]])
  t.like(out6, "counter 10\n", "spawn: 10 processes increment a Value under get_lock()")
  t.like(out6, "sync 0 2 7.5 9 false\n",
         "spawn: locks, semaphores, Event, Condition, Barrier, Array, RawValue, RawArray as arguments")
  t.is(mp.get_start_method(), "fork", "fork stays the default")
end

-- no zombies, no leaked descriptors after 200 processes
do
  -- the pools above close their last descriptors from their own threads:
  -- wait until the count is steady
  local function steady()
    local n, last = fdcount(), -1
    for _ = 1, 30 do
      if n == last then break end
      time.sleep(0.1)
      collectgarbage(); collectgarbage()
      last, n = n, fdcount()
    end
    return n
  end
  local before = steady()
  for _ = 1, 200 do
    local p = mp.Process{ target = function() end }
    p:start(); p:join()
  end
  t.is(steady(), before, "descriptors unchanged around 200 processes")
  local zombies = 0
  local ps = io.popen("ps -o stat= --ppid " .. os.getpid())
  for line in ps:lines() do if line:match("Z") then zombies = zombies + 1 end end
  ps:close()
  t.is(zombies, 0, "no zombie children")
  t.is(#mp.active_children(), 0, "no active children left")
end

-- daemon children are terminated at exit
do
  local script = os.tmpname()
  local f = io.open(script, "w")
  f:write([[
local mp = require "multiprocessing"
local p = mp.Process{target = function() require("time").sleep(60) end, daemon = true}
p:start()
print(p.pid)
]])
  f:close()
  local gilua = os.getenv("GILUA") or "gilua"
  local pipe = io.popen(gilua .. " " .. script)
  local pid = tonumber(pipe:read("l"))
  pipe:close()
  time.sleep(0.2)
  t.ok(pid and not os.execute("kill -0 " .. pid .. " 2>/dev/null"), "daemon child gone after the parent exits")
  os.remove(script)
end

t.done_testing()
