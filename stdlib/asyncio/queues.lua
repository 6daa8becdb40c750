--[[
asyncio.queues: Queue, PriorityQueue and LifoQueue for tasks of one
event loop, with QueueEmpty and QueueFull.

    local q = asyncio.Queue(10)            -- or Queue{maxsize = 10}
    q:put(x):await(); local x = q:get():await()
    q:put_nowait(x); q:get_nowait(); q:task_done(); q:join():await()

As with queue.Queue, nil travels: q:put(nil) enqueues a nil that get()
returns. A PriorityQueue orders its items with `<`; an item that is a
plain table {priority, value, ...} is ordered by its first element, then
by insertion order.
]]

local Object = require "gilua.class"
local exc = require "gilua.exceptions"
local args = require "gilua.args"
local core = require "asyncio.core"
local waiters = require "asyncio.waiters"

local Exception, ValueError = exc.Exception, exc.ValueError
local async, await_future, new_future = core.async, core._await_future, core._new_future
local set_result = core._set_result
local PENDING = core.PENDING
local wq_new, wq_wait, wake_first = waiters.new, waiters.wait, waiters.wake_first
local error, type, getmetatable, tostring = error, type, getmetatable, tostring

local M = {}

M.QueueEmpty = Exception:extend("asyncio.QueueEmpty")
M.QueueFull = Exception:extend("asyncio.QueueFull")
local QueueEmpty, QueueFull = M.QueueEmpty, M.QueueFull

local HOLE = {}                 -- stands for a nil item in the storage

local Queue = Object:extend("asyncio.Queue")
M.Queue = Queue

function Queue:init(maxsize)
  if args.is_options(maxsize) then maxsize = maxsize.maxsize end
  maxsize = maxsize == nil and 0 or args.check(maxsize, "integer", "Queue", "maxsize")
  self.maxsize = maxsize
  self._getters = wq_new()        -- tasks waiting for an item
  self._putters = wq_new()        -- tasks waiting for room
  self._unfinished = 0
  self._finished = nil         -- future of join() callers, while work is pending
  self:_init()
end

-- FIFO storage: a ring of array slots h..t.
function Queue:_init() self._items = { h = 1, t = 0 } end
function Queue:_qsize() local it = self._items; return it.t - it.h + 1 end
function Queue:_put(x)
  local it = self._items
  local t = it.t + 1
  it.t = t
  it[t] = x
end
function Queue:_get()
  local it = self._items
  local h = it.h
  local x = it[h]
  it[h] = nil
  it.h = h + 1
  if it.h > it.t then it.h, it.t = 1, 0 end
  return x
end

function Queue:qsize() return self:_qsize() end
function Queue:empty() return self:_qsize() == 0 end
function Queue:full()
  return self.maxsize > 0 and self:_qsize() >= self.maxsize
end

-- Waits on a future in 'q' (getters or putters); on cancellation it
-- leaves q and, if it had been woken, wakes the next one instead.
local function wait_turn(self, q, other_ok)
  local ok, e, woken = wq_wait(q, core.get_running_loop())
  if not ok then
    if woken and other_ok(self) then wake_first(q) end
    error(e, 0)
  end
end

local function can_put(self) return not self:full() end
local function can_get(self) return not self:empty() end

function Queue:put_nowait(item)
  if self:full() then error(QueueFull(), 2) end
  if item == nil then item = HOLE end
  self:_put(item)
  self._unfinished = self._unfinished + 1
  wake_first(self._getters)
end

function Queue:get_nowait()
  if self:empty() then error(QueueEmpty(), 2) end
  local item = self:_get()
  wake_first(self._putters)
  if item == HOLE then return nil end
  return item
end

local put = async(function(self, item)
  while self:full() do wait_turn(self, self._putters, can_put) end
  return self:put_nowait(item)
end, "Queue.put")

local get = async(function(self)
  while self:empty() do wait_turn(self, self._getters, can_get) end
  return self:get_nowait()
end, "Queue.get")

function Queue:put(item) return put(self, item) end
function Queue:get() return get(self) end

function Queue:task_done()
  if self._unfinished <= 0 then
    error(ValueError("task_done() called too many times"), 2)
  end
  self._unfinished = self._unfinished - 1
  if self._unfinished == 0 and self._finished then
    local f = self._finished
    self._finished = nil
    if f._state == PENDING then set_result(f, nil) end
  end
end

local join = async(function(self)
  if self._unfinished > 0 then
    local f = self._finished
    if f == nil then
      f = new_future(core.get_running_loop())
      self._finished = f
    end
    await_future(f)
  end
end, "Queue.join")

function Queue:join() return join(self) end

function Queue:__tostring()
  return ("<%s maxsize=%d qsize=%d>"):format(
    tostring(getmetatable(self).__name), self.maxsize, self:_qsize())
end

-- LifoQueue ---------------------------------------------------------------------------

local LifoQueue = Queue:extend("asyncio.LifoQueue")
M.LifoQueue = LifoQueue

function LifoQueue:_init() self._items = { n = 0 } end
function LifoQueue:_qsize() return self._items.n end
function LifoQueue:_put(x)
  local it = self._items
  local n = it.n + 1
  it.n = n
  it[n] = x
end
function LifoQueue:_get()
  local it = self._items
  local n = it.n
  local x = it[n]
  it[n] = nil
  it.n = n - 1
  return x
end

-- PriorityQueue: a binary heap ordered by key, then insertion number --------------------

local PriorityQueue = Queue:extend("asyncio.PriorityQueue")
M.PriorityQueue = PriorityQueue

local function key(x)
  if type(x) == "table" and getmetatable(x) == nil then return x[1] end
  return x
end

local function less(a, b)
  local ka, kb = key(a[1]), key(b[1])
  if ka ~= kb then
    if ka < kb then return true end
    if kb < ka then return false end
  end
  return a[2] < b[2]
end

function PriorityQueue:_init() self._items = { n = 0, seq = 0 } end
function PriorityQueue:_qsize() return self._items.n end

function PriorityQueue:_put(x)
  local h = self._items
  local seq = h.seq + 1
  h.seq = seq
  local e = { x, seq }
  local i = h.n + 1
  h.n = i
  while i > 1 do
    local p = i // 2
    if not less(e, h[p]) then break end
    h[i] = h[p]
    i = p
  end
  h[i] = e
end

function PriorityQueue:_get()
  local h = self._items
  local n = h.n
  local top, last = h[1], h[n]
  h[n] = nil
  n = n - 1
  h.n = n
  if n > 0 then
    local i = 1
    while true do
      local c = 2 * i
      if c > n then break end
      if c < n and less(h[c + 1], h[c]) then c = c + 1 end
      if not less(h[c], last) then break end
      h[i] = h[c]
      i = c
    end
    h[i] = last
  end
  return top[1]
end

return M
