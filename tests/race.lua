#!/usr/bin/env gilua
-- The course's race condition: four threads incrementing a shared counter
-- 1,000,000 times each lose updates without a lock, and do not with one.
local t = require "tap"
local threading = require "threading"
local util = require "support.util"

local THREADS, PER_THREAD = 4, 1000000

counter = 0

-- Why a function call between the read and the write: Lua's VM (like
-- CPython 3.10+) only notices a pending GIL drop request at calls, returns
-- and loop back-edges, never between two plain instructions, so
-- `local c = counter; counter = c + 1` in a bare loop body can never be
-- preempted between its read and its write, and would never lose an update.
-- With `lire()` the thread can be switched out right after lire returns the
-- value it read, exactly like Python's `counter += 1` (read, then store).
local function lire() return counter end

local function unsafe()
  for _ = 1, PER_THREAD do
    local c = lire()
    counter = c + 1
  end
end

local lock = threading.Lock()
local function safe()
  for _ = 1, PER_THREAD do
    local _ <close> = lock:acquire()
    local c = lire()
    counter = c + 1
  end
end

local function run(fn)
  counter = 0
  local ths = {}
  for i = 1, THREADS do ths[i] = threading.Thread{ target = fn } end
  local t0 = util.clock()
  for i = 1, THREADS do ths[i]:start() end
  for i = 1, THREADS do ths[i]:join() end
  return counter, util.clock() - t0
end

local expected = THREADS * PER_THREAD

local got, dt = run(unsafe)
t.note(("without a lock: %d of %d (%.2f s)"):format(got, expected, dt))
t.ok(got < expected, "without a lock, updates are lost (" .. got .. " < " .. expected .. ")")
t.ok(got >= PER_THREAD, "... but each thread's own increments are not all lost")

got, dt = run(safe)
t.note(("with a Lock: %d of %d (%.2f s)"):format(got, expected, dt))
t.is(got, expected, "with a Lock, no update is lost")

-- lock:with(fn) protects as well
counter = 0
local function with_lock()
  for _ = 1, PER_THREAD // 4 do
    lock:with(function() local c = lire(); counter = c + 1 end)
  end
end
local ths = {}
for i = 1, THREADS do ths[i] = threading.Thread{ target = with_lock }; ths[i]:start() end
for i = 1, THREADS do ths[i]:join() end
t.is(counter, THREADS * (PER_THREAD // 4), "with lock:with(fn), no update is lost")

t.done_testing()
