--[[
asyncio.runners: what starts a loop and what links it to other OS
threads (Python's runners.py, threads.py and the executor part of
base_events.py): run, Runner, wrap_future, to_thread,
run_coroutine_threadsafe, and the loop's run_in_executor,
set_default_executor and shutdown_default_executor.
]]

local Object = require "gilua.class"
local exc = require "gilua.exceptions"
local args = require "gilua.args"
local _thread = require "_thread"
local core = require "asyncio.core"
local combinators = require "asyncio.combinators"

local RuntimeError, TypeError = exc.RuntimeError, exc.TypeError
local EventLoop, Future = core.EventLoop, core.Future
local PENDING, CANCELLED, FINISHED = core.PENDING, core.CANCELLED, core.FINISHED
local new_future, set_result, set_exception = core._new_future, core._set_result,
  core._set_exception
local retrieved, outcome = core._retrieved, core._outcome
local check_coro, ensure_future = core._check_coro, core._ensure_future
local await_future, check_closed = core._await_future, core._check_closed
local event_loops = core._event_loops
local type, error, pcall, next = type, error, pcall, next
local pack, unpack = table.pack, table.unpack
local get_ident = _thread.get_ident
local is_options = args.is_options

local M = {}

local futures_mod
local function cfutures()
  if not futures_mod then futures_mod = require "concurrent.futures" end
  return futures_mod
end

-- Copies the outcome of a concurrent.futures.Future into an asyncio one.
local function copy_cf_state(cf, afut)
  if afut._state ~= PENDING then return end
  if cf:cancelled() then
    afut:cancel()
    return
  end
  local r = pack(pcall(cf.result, cf, 0))
  if r[1] then
    set_result(afut, unpack(r, 2, r.n))
  else
    local e = r[2]
    if type(e) == "table" and cfutures().CancelledError:is(e) then
      afut:cancel()
    else
      set_exception(afut, e)
    end
  end
end

function M.wrap_future(cf, opts)
  if type(cf) == "table" and cf._state ~= nil and Future:is(cf) then return cf end
  local loop = opts
  if is_options(opts) then loop = opts.loop end
  loop = loop or core.get_event_loop()
  local afut = new_future(loop)
  afut:add_done_callback(function(f)
    if f._state == CANCELLED then cf:cancel() end
  end)
  cf:add_done_callback(function(f)
    if loop._closed then return end
    loop:call_soon_threadsafe(copy_cf_state, f, afut)
  end)
  return afut
end

function EventLoop:set_default_executor(ex) self._default_executor = ex end

function EventLoop:run_in_executor(executor, fn, ...)
  check_closed(self)
  args.check(fn, "callable", "run_in_executor", "func")
  if executor == nil then
    executor = self._default_executor
    if executor == nil then
      executor = cfutures().ThreadPoolExecutor{ thread_name_prefix = "asyncio" }
      self._default_executor = executor
    end
  end
  return M.wrap_future(executor:submit(fn, ...), self)
end

-- Shuts the default executor down (waiting for its work) from a thread of
-- its own, so that the loop goes on meanwhile.
local shutdown_executor                 -- below
function EventLoop:shutdown_default_executor()
  return shutdown_executor(self)
end

function M.to_thread(fn, ...)
  local loop = core.get_running_loop()
  return loop:run_in_executor(nil, fn, ...)
end

function M.run_coroutine_threadsafe(coro, loop)
  coro = check_coro(coro, "run_coroutine_threadsafe")
  if loop == nil then error(TypeError("run_coroutine_threadsafe(): a loop is required"), 2) end
  local cf = cfutures().Future()
  loop:call_soon_threadsafe(function()
    if not cf:set_running_or_notify_cancel() then
      coro:close()
      return
    end
    local ok, task = pcall(ensure_future, coro, loop)
    if not ok then cf:set_exception(task); return end
    task:add_done_callback(function(t)
      if t._state == CANCELLED then
        cf:set_exception(cfutures().CancelledError())
      elseif t._failed then
        retrieved(t)
        cf:set_exception(t._exception)
      else
        cf:set_result(outcome(t))
      end
    end)
    cf:add_done_callback(function(f)
      if f:cancelled() then loop:call_soon_threadsafe(function() task:cancel() end) end
    end)
  end)
  return cf
end

-- asyncio.run -------------------------------------------------------------------------

local function cancel_all(loop)
  local pending, n = {}, 0
  for t in next, core.all_tasks(loop) do
    n = n + 1
    pending[n] = t
    t:cancel()
  end
  if n == 0 then return end
  pending.n = n
  loop:run_until_complete(combinators.gather(unpack(pending, 1, n), { return_exceptions = true }))
  for i = 1, n do
    local t = pending[i]
    if t._state == FINISHED and t._failed then
      retrieved(t)
      loop:call_exception_handler{
        message = "unhandled exception during asyncio.run() shutdown",
        exception = t._exception, traceback = t._tb, task = t }
    end
  end
end

local RUN_SPEC = { "debug", "loop_factory", fname = "asyncio.run" }

function M.run(main, ...)
  local debug, loop_factory = args.get(RUN_SPEC, ...)
  if core._get_running_loop() ~= nil then
    error(RuntimeError("asyncio.run() cannot be called from a running event loop"), 2)
  end
  main = check_coro(main, "asyncio.run")
  local loop = loop_factory and loop_factory() or EventLoop()
  if debug then loop:set_debug(true) end
  local me = get_ident()
  local saved = event_loops[me]
  event_loops[me] = loop
  local res = pack(pcall(loop.run_until_complete, loop, main))
  local ok2, e2 = pcall(function()
    cancel_all(loop)
    if loop._default_executor then
      loop:run_until_complete(loop:shutdown_default_executor())
    end
  end)
  event_loops[me] = saved
  loop:close()
  if not res[1] then error(res[2], 0) end
  if not ok2 then error(e2, 0) end
  return unpack(res, 2, res.n)
end

local Runner = Object:extend("asyncio.Runner")
M.Runner = Runner

function Runner:init(opts)
  self._debug = opts and opts.debug
end

function Runner:get_loop()
  if not self._loop then
    self._loop = EventLoop()
    if self._debug then self._loop:set_debug(true) end
  end
  return self._loop
end

function Runner:run(coro)
  local loop = self:get_loop()
  return loop:run_until_complete(coro)
end

function Runner:close()
  local loop = self._loop
  if loop and not loop._closed then
    pcall(cancel_all, loop)
    loop:close()
  end
end
Runner.__close = Runner.close

shutdown_executor = core.async(function(loop)
  local ex = loop._default_executor
  loop._default_executor = nil
  if ex == nil then return end
  local threading = require "threading"
  local fut = new_future(loop)
  local th = threading.Thread{ name = "asyncio-executor-shutdown", daemon = true,
    target = function()
      pcall(ex.shutdown, ex, true)
      if not loop._closed then
        loop:call_soon_threadsafe(function()
          if fut._state == PENDING then set_result(fut) end
        end)
      end
    end }
  th:start()
  await_future(fut)
  th:join()
end, "shutdown_default_executor")


return M
