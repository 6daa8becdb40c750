--[[
multiprocessing.executor: concurrent.futures.ProcessPoolExecutor (also
concurrent.futures.process), the process half of concurrent.futures on
the pool engine of multiprocessing.pool, with the Executor and Future of
concurrent.futures.

A worker that dies abruptly breaks the pool as in Python: every pending
future fails with BrokenProcessPool, and submit raises it from then on.
map's chunksize is accepted and ignored (each call is its own task).
]]

local futures = require "concurrent._base"
local pool = require "multiprocessing.pool"
local _mp = require "_multiprocessing"
local exc = require "gilua.exceptions"
local args = require "gilua.args"
local threading = require "threading"

local unpack, next, pcall, type, tostring = table.unpack, next, pcall, type, tostring
local ValueError, RuntimeError = exc.ValueError, exc.RuntimeError

local M = {}

M.BrokenProcessPool = futures.BrokenExecutor:extend("concurrent.futures.process.BrokenProcessPool")
local BrokenProcessPool = M.BrokenProcessPool

local ProcessPoolExecutor = futures.Executor:extend("concurrent.futures.ProcessPoolExecutor")
M.ProcessPoolExecutor = ProcessPoolExecutor

local ARGS = { "max_workers", "mp_context", "initializer", "initargs",
               "max_tasks_per_child", fname = "ProcessPoolExecutor" }

function ProcessPoolExecutor:init(...)
  local n, ctx, initializer, initargs, maxtasks = args.get(ARGS, ...)
  if n == nil then n = _mp.cpu_count() or 1
  elseif math.type(n) ~= "integer" or n <= 0 then
    error(ValueError("max_workers must be greater than 0"), 3)
  end
  self._max_workers = n
  local me = self
  self._engine = pool._Engine{ processes = n, initializer = initializer,
    initargs = initargs, maxtasksperchild = maxtasks, on_death = "break",
    name = "ProcessPoolExecutor", context = ctx,
    broken = function(code) me:_broken(code) end }
end

function ProcessPoolExecutor:_broken(code)
  self._is_broken = "A process in the process pool was terminated abruptly while the future was running or pending."
  local lost = self._engine:terminate()
  for _, t in next, lost do
    pcall(t.done, false, BrokenProcessPool(self._is_broken))
  end
end

-- A future settled from a worker's outcome (pool._run_task's).
local function finish(f, ok, v, r)
  if f:done() then return end
  if ok then
    f:set_result(unpack(r, 2, r.n))
  elseif type(v) == "table" and v._string then
    f:set_exception(v._string, v._tb)
  else
    f:set_exception(v, type(v) == "table" and v.traceback or nil)
  end
end
M._finish = finish

function ProcessPoolExecutor:submit(fn, ...)
  args.check(fn, "callable", "ProcessPoolExecutor.submit", "fn")
  if self._is_broken then error(BrokenProcessPool(self._is_broken), 2) end
  if self._shutdown then
    error(RuntimeError("cannot schedule new futures after shutdown"), 2)
  end
  local f = futures.Future()
  local ok = self._engine:submit{ fn = fn, kind = "call", args = table.pack(...), future = f,
    start = function() return f:set_running_or_notify_cancel() end,
    done = function(ok, v, r)
      if not ok and pool.WorkerLostError:is(v) then
        v = BrokenProcessPool(self._is_broken or tostring(v.message))
      end
      finish(f, ok, v, r)
    end }
  if not ok then
    if self._is_broken then error(BrokenProcessPool(self._is_broken), 2) end
    error(RuntimeError("cannot schedule new futures after shutdown"), 2)
  end
  return f
end

local SHUTDOWN_ARGS = { "wait", "cancel_futures", fname = "Executor.shutdown" }

function ProcessPoolExecutor:shutdown(...)
  local wait, cancel = args.get(SHUTDOWN_ARGS, ...)
  if self._shutdown then
    if args.bool(wait, true) and not self._is_broken then pcall(self._engine.join, self._engine) end
    return
  end
  self._shutdown = true
  local e = self._engine
  if cancel then
    e._cv:acquire()
    local dropped = {}
    for i = e._phead, e._ptail do dropped[#dropped + 1] = e._pending[i] end
    e._pending, e._phead, e._ptail = {}, 1, 0
    e._cv:release()
    -- the futures of tasks no worker took are cancelled, as in Python
    for _, t in ipairs(dropped) do if t.future then t.future:cancel() end end
  end
  e:close()
  if args.bool(wait, true) and not self._is_broken then e:join() end
end

function ProcessPoolExecutor:__tostring()
  return ("<concurrent.futures.ProcessPoolExecutor max_workers=%d%s>"):format(
    self._max_workers, self._shutdown and " shutdown" or "")
end

-- Program exit: the queued work is done first, as Python's executors do
-- (this runs before multiprocessing's own exit handler stops the workers).
local live = setmetatable({}, { __mode = "k" })
local plain_init = ProcessPoolExecutor.init
function ProcessPoolExecutor:init(...)
  plain_init(self, ...)
  live[self] = true
end
threading._register_atexit(function()
  for ex in next, live do pcall(ex.shutdown, ex, true) end
end)

return M
