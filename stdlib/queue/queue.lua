--[[
queue: Python's queue module (with 3.13's shutdown) on the C core _queue.

    local queue = require "queue"
    local q = queue.Queue(5)            -- or queue.Queue{maxsize = 5}
    q:put(item)                         -- put(item, block, timeout), put(item, {timeout = 1})
    local x = q:get()                   -- get(block, timeout), get{timeout = 2}
    local ok, err = pcall(q.get, q, true, 0.1)
    if queue.Empty:is(err) then ... end

The classes are made with the class model (`Queue:extend()` subclasses,
`queue.Queue:is(q)` works); their methods are the C functions themselves,
which find the C queue in the instance's field `_q`, so a call costs no
Lua wrapper.

Where Lua and Python differ:
  * nil is an item: q:put(nil) enqueues a nil that q:get() returns (the
    course's end-of-work sentinel). put() with no item at all is a
    TypeError.
  * block/timeout may be one options table: q:get{timeout = 2},
    q:put(item, {block = false}). An item that is itself a plain table is
    fine: only a table in the block position is taken for options.
  * PriorityQueue orders items with `<`; a plain table (no metatable) is a
    {priority, value} pair ordered by its [1] only, and equal priorities
    come out in insertion order (Python would compare the values next).
    Items that `<` cannot compare (nil among numbers, as None in Python)
    raise Lua's comparison error, and the queue is left as it was.
  * The storage is in C: overriding _put/_get/_qsize in a subclass changes
    nothing, and there are no mutex/not_empty/not_full attributes.
    maxsize and is_shutdown are plain fields (read them, do not write).
  * task_done() called too many times is a ValueError, as in Python.
]]

local _queue = require "_queue"
local Object = require "gilua.class"
local exc = require "gilua.exceptions"
local args = require "gilua.args"

local Exception = exc.Exception

local M = {}

M.Empty = Exception:extend("queue.Empty")
M.Full = Exception:extend("queue.Full")
M.ShutDown = Exception:extend("queue.ShutDown")

local new = _queue.new
local c_shutdown = _queue.shutdown

local QUEUE_ARGS = { "maxsize", fname = "Queue" }

local Queue = Object:extend("queue.Queue")
M.Queue = Queue
Queue._kind = "fifo"

function Queue:init(...)
  local maxsize = args.get(QUEUE_ARGS, ...)
  maxsize = args.opt(maxsize, "integer", "Queue", "maxsize", 0)
  self._q = new(self._kind, maxsize)
  self.maxsize = maxsize
  self.is_shutdown = false
end

for _, name in ipairs { "put", "get", "put_nowait", "get_nowait", "qsize",
                        "empty", "full", "task_done", "join" } do
  Queue[name] = _queue[name]
end

-- shutdown(immediate=false) or shutdown{immediate = true}
function Queue:shutdown(...)
  self.is_shutdown = true
  return c_shutdown(self, ...)
end

function Queue:__tostring()
  local cname = rawget(getmetatable(self), "__name") or "queue.Queue"
  return ("<%s maxsize=%d size=%d>"):format(cname, self.maxsize, self:qsize())
end

M.LifoQueue = Queue:extend("queue.LifoQueue")
M.LifoQueue._kind = "lifo"

M.PriorityQueue = Queue:extend("queue.PriorityQueue")
M.PriorityQueue._kind = "priority"

-- SimpleQueue: unbounded FIFO without task tracking (put never blocks; its
-- block and timeout are accepted and ignored, as in Python).
local SimpleQueue = Object:extend("queue.SimpleQueue")
M.SimpleQueue = SimpleQueue

function SimpleQueue:init()
  self._q = new("simple")
end

for _, name in ipairs { "put", "get", "put_nowait", "get_nowait", "qsize",
                        "empty" } do
  SimpleQueue[name] = _queue[name]
end

function SimpleQueue:__tostring()
  return ("<queue.SimpleQueue size=%d>"):format(self:qsize())
end

return M
