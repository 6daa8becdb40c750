#!/usr/bin/env gilua
-- Every public function of multiprocessing, its pool, its manager and
-- shared_memory checks its arguments up front, with an error that names the
-- function and the argument (as Python's), never an internal function's
-- name, a wrapped number or a failure later.
require("support.util").tsan_allow_fork()

local t = require "tap"
local mp = require "multiprocessing"
local shared_memory = require "multiprocessing.shared_memory"

-- fn raises an instance of cls whose message matches every pattern, and
-- names no internal function (rawshm, semlock, a .lua file and line)
local function fails(fn, cls, patterns, name)
  local ok, err = pcall(fn)
  local msg = tostring(err)
  local good = not ok and cls:is(err)
  for _, p in ipairs(patterns) do good = good and msg:find(p) ~= nil end
  good = good and not msg:find("rawshm") and not msg:find("semlock")
         and not msg:find("%.lua:%d+") and not msg:find("bad argument #")
  t.ok(good, name .. " -> " .. msg)
end

local function f(x) return x end

-- multiprocessing
fails(function() return mp.Lock(5) end, TypeError, { "^TypeError: Lock%(%) takes no arguments" }, "Lock(5)")
fails(function() return mp.RLock(5) end, TypeError, { "RLock%(%)" }, "RLock(5)")
fails(function() return mp.Event(1) end, TypeError, { "Event%(%)" }, "Event(1)")
fails(function() return mp.SimpleQueue(1) end, TypeError, { "SimpleQueue%(%)" }, "SimpleQueue(1)")
fails(function() return mp.Condition(5) end, TypeError, { "Condition%(%)", "'lock'" }, "Condition(5)")
fails(function() return mp.Condition(mp.Semaphore(1)) end, TypeError, { "Condition%(%)", "'lock'" },
      "Condition(Semaphore)")
t.ok(pcall(mp.Condition, mp.Lock()), "Condition(Lock()) is fine")
fails(function() return mp.Value("i", 1, { lock = 5 }) end, AttributeError, { "Value%(%)", "acquire" },
      "Value(lock = 5)")
fails(function() return mp.Value("i", 1, 5) end, TypeError, { "Value%(%)" }, "Value('i', 1, 5)")
fails(function() return mp.Array("i", 3, { lock = "x" }) end, AttributeError, { "Array%(%)", "acquire" },
      "Array(lock = 'x')")
t.ok(pcall(mp.Value, "i", 1, { lock = mp.Lock() }), "Value with a lock of one's own is fine")
fails(function() return mp.Value("z") end, TypeError, { "Value%(%)", "typecode" }, "Value('z')")
fails(function() return mp.Value(5) end, TypeError, { "Value%(%)", "typecode" }, "Value(5)")
fails(function() return mp.RawValue("ii") end, TypeError, { "RawValue%(%)", "typecode" }, "RawValue('ii')")
fails(function() return mp.Value("i", "x") end, TypeError, { "Value%(%)", "initial value" }, "Value('i', 'x')")
fails(function() return mp.Array("i", -1) end, ValueError, { "Array%(%)", "%-1" }, "Array('i', -1)")
fails(function() return mp.RawArray("i", 1.5) end, TypeError, { "RawArray%(%)", "size_or_initializer" },
      "RawArray('i', 1.5)")
fails(function() return mp.Array("i", { 1, "x" }) end, TypeError, { "Array%(%)", "index 2" },
      "Array('i', {1, 'x'})")
do
  local a = mp.Array("i", 3)
  fails(function() return a[math.maxinteger] end, IndexError, { tostring(math.maxinteger) },
        "a[maxinteger]: the index is shown whole, not wrapped")
  fails(function() a[-(1 << 40)] = 1 end, IndexError, { tostring(-(1 << 40)) }, "a[-2^40] = 1")
end
fails(function() return mp.Semaphore("x") end, TypeError, { "Semaphore%(%)", "'value'" }, "Semaphore('x')")
fails(function() return mp.Semaphore(-1) end, ValueError, { "Semaphore%(%)" }, "Semaphore(-1)")
fails(function() return mp.Semaphore(math.maxinteger) end, OverflowError, { "Semaphore%(%)" },
      "Semaphore(maxinteger): OverflowError, as Python's")
do
  local s = mp.Semaphore(2147483647)
  fails(function() s:release() end, ValueError, { "released too many times" },
        "a release past SEM_VALUE_MAX is a ValueError")
  t.is(s:get_value(), 2147483647, "... and the count did not wrap")
end
fails(function() return mp.BoundedSemaphore(1.5) end, TypeError, { "BoundedSemaphore%(%)" }, "BoundedSemaphore(1.5)")
fails(function() return mp.Queue("x") end, TypeError, { "Queue%(%)", "'maxsize'" }, "Queue('x')")
fails(function() return mp.Barrier(0) end, ValueError, { "Barrier%(%)" }, "Barrier(0)")
fails(function() return mp.Barrier("x") end, TypeError, { "Barrier%(%)", "'parties'" }, "Barrier('x')")
fails(function() return mp.Barrier(2, 5) end, TypeError, { "Barrier%(%)", "'action'" }, "Barrier(2, 5)")
fails(function() return mp.Process{ target = f, name = 5 } end, TypeError, { "Process%(%)", "'name'" },
      "Process{name = 5}")
fails(function() return mp.Process{ target = f, kwargs = 5 } end, TypeError, { "Process%(%)", "'kwargs'" },
      "Process{kwargs = 5}")
fails(function() return mp.connection.wait({ "x" }) end, TypeError, { "wait%(%)", "object_list%[1%]" },
      "connection.wait({'x'})")
fails(function() return mp.connection.wait(5) end, TypeError, { "wait%(%)", "object_list" },
      "connection.wait(5)")

-- Pool
fails(function() return mp.Pool("x") end, TypeError, { "Pool%(%)", "'processes'", "string" },
      "Pool('x'): a TypeError, not 'at least 1'")
fails(function() return mp.Pool{ processes = 1e9 } end, ValueError, { "Pool%(%)", "1000000000" },
      "Pool{processes = 1e9}: more than the system can run")
fails(function() return mp.Pool(0) end, ValueError, { "at least 1" }, "Pool(0)")
fails(function() return mp.Pool{ processes = 1, initializer = 5 } end, TypeError, { "'initializer'" },
      "Pool{initializer = 5}")
fails(function() return mp.Pool{ processes = 1, initargs = 5 } end, TypeError, { "'initargs'" },
      "Pool{initargs = 5}")
fails(function() return mp.Pool{ processes = 1, maxtasksperchild = 0 } end, ValueError,
      { "maxtasksperchild" }, "Pool{maxtasksperchild = 0}")
do
  local pool <close> = mp.Pool(1)
  fails(function() return pool:map(f, { 1, 2 }, 0) end, ValueError, { "Pool.map%(%)", "Chunksize must be 1%+, not 0" },
        "map(f, t, 0): Python's message, not \"'for' step is zero\"")
  fails(function() return pool:imap(f, { 1, 2 }, -1) end, ValueError, { "Pool.imap%(%)", "Chunksize" },
        "imap(f, t, -1)")
  fails(function() return pool:map(f, { 1, 2 }, "x") end, TypeError, { "Pool.map%(%)", "'chunksize'" },
        "map(f, t, 'x')")
  fails(function() return pool:starmap(f, { 1, 2 }) end, TypeError, { "Pool.starmap%(%)", "iterable%[1%]" },
        "starmap(f, {1, 2}): TypeError in the caller")
  fails(function() return pool:map_async(f, { 1 }, nil, 5) end, TypeError, { "'callback'" },
        "map_async(callback = 5)")
  fails(function() return pool:apply_async(f, 5) end, TypeError, { "Pool.apply_async%(%)", "'args'" },
        "apply_async(f, 5)")
  fails(function() return pool:apply(5) end, TypeError, { "Pool.apply%(%)", "'func'" }, "apply(5)")
  -- the worker survived all that
  t.is(pool:apply(f, { 42 }), 42, "the pool still works")
  local r = pool:starmap(function(a, b) return a + b end, { { 1, 2 }, { 3, 4 } })
  t.is(r[2], 7, "starmap with tables of arguments works")
end

-- SharedMemory
fails(function() return shared_memory.SharedMemory{ name = "a\0b", create = true, size = 8 } end,
      ValueError, { "SharedMemory%(%)", "null character" }, "a name with a NUL byte: ValueError, not cut")
do
  local f = io.open("/dev/shm/a", "r")
  t.ok(f == nil, "no block named after the part before the NUL")
  if f then f:close() end
end
fails(function() return shared_memory.SharedMemory{ name = 5, create = true, size = 8 } end,
      TypeError, { "SharedMemory%(%)", "'name'" }, "SharedMemory{name = 5}")
fails(function() return shared_memory.SharedMemory{ create = true, size = -1 } end,
      ValueError, { "SharedMemory%(%)", "'size'" }, "SharedMemory{size = -1}")
fails(function() return shared_memory.SharedMemory{ create = true, size = "x" } end,
      TypeError, { "SharedMemory%(%)", "'size'" }, "SharedMemory{size = 'x'}")
fails(function() return shared_memory.SharedMemory{ create = true, size = 0 } end,
      ValueError, { "different from zero" }, "SharedMemory{create = true, size = 0}")
do
  local shm = shared_memory.SharedMemory{ create = true, size = 4 }
  fails(function() return shm.buf[1 << 40] end, IndexError, { tostring(1 << 40) }, "buf[2^40]: shown whole")
  shm:close(); shm:unlink()
end

-- the manager
do
  local manager <close> = mp.Manager()
  fails(function() return manager:Semaphore("x") end, TypeError, { "SyncManager.Semaphore%(%)", "'value'" },
        "manager:Semaphore('x')")
  fails(function() return manager:Semaphore(-1) end, ValueError, { "SyncManager.Semaphore%(%)" },
        "manager:Semaphore(-1)")
  fails(function() return manager:Queue("x") end, TypeError, { "SyncManager.Queue%(%)", "'maxsize'" },
        "manager:Queue('x')")
  fails(function() return manager:dict(5) end, TypeError, { "SyncManager.dict%(%)", "'init'" },
        "manager:dict(5)")
  fails(function() return manager:Lock(5) end, TypeError, { "SyncManager.Lock%(%)" }, "manager:Lock(5)")
  fails(function() return manager:Value(5) end, TypeError, { "SyncManager.Value%(%)", "'typecode'" },
        "manager:Value(5)")
  t.ok(pcall(manager.Queue, manager, 3), "manager:Queue(3) is fine")
end

t.done_testing()
