--[[
asyncio.taskgroups: Python 3.11's TaskGroup, with `<close>` in place of
`async with` (a Lua closing method may wait: it runs in the task).

    do
      local tg <close> = asyncio.TaskGroup()
      tg:create_task(fetch(1))
      tg:create_task(fetch(2))
    end   -- waits here for both; if one fails, the others are cancelled
          -- and an ExceptionGroup holding the errors is raised

ExceptionGroup (Python's builtin in 3.11) is asyncio.ExceptionGroup:
`e.exceptions` is the array of errors, `e.message` the group's message.
]]

local Object = require "gilua.class"
local exc = require "gilua.exceptions"
local core = require "asyncio.core"

local RuntimeError, Exception, BaseException = exc.RuntimeError, exc.Exception, exc.BaseException
local CancelledError = core.CancelledError
local new_future, await_future, set_result = core._new_future, core._await_future, core._set_result
local PENDING = core.PENDING
local pcall, error, type, tostring, next = pcall, error, type, tostring, next

local M = {}

local ExceptionGroup = Exception:extend("ExceptionGroup")
M.ExceptionGroup = ExceptionGroup

function ExceptionGroup:init(message, exceptions)
  Exception.init(self, message, exceptions)
  self.exceptions = exceptions or {}
end

function ExceptionGroup:__tostring()
  local n = #self.exceptions
  return ("ExceptionGroup: %s (%d sub-exception%s)"):format(
    tostring(self.message), n, n == 1 and "" or "s")
end

local TaskGroup = Object:extend("asyncio.TaskGroup")
M.TaskGroup = TaskGroup

function TaskGroup:init()
  local parent = core.current_task()
  if parent == nil then
    error(RuntimeError("TaskGroup must be used inside a task"), 3)
  end
  self._parent = parent
  self._loop = parent._loop
  self._tasks, self._n = {}, 0
  self._errors = {}
  self._aborting, self._exiting, self._exited = false, false, false
  self._parent_cancel_requested = false
end

local function abort(self)
  self._aborting = true
  for t in next, self._tasks do
    if not t:done() then t:cancel() end
  end
end

local function on_task_done(self, t)
  self._tasks[t] = nil
  self._n = self._n - 1
  local w = self._on_completed
  if self._n == 0 and w and w._state == PENDING then set_result(w, true) end
  if t:cancelled() then return end
  if not t._failed then return end
  local e = t:exception()
  self._errors[#self._errors + 1] = e
  if type(e) == "table" and not Exception:is(e) and BaseException:is(e) then
    self._base_error = self._base_error or e   -- KeyboardInterrupt, SystemExit
  end
  if not self._aborting then abort(self) end
  if not self._exiting and not self._parent_cancel_requested
     and self._parent._state == PENDING then
    -- the body of the group is still running: stop it, as Python does
    self._parent_cancel_requested = true
    self._parent:cancel()
  end
end

function TaskGroup:create_task(coro, opts)
  if self._exited then error(RuntimeError("TaskGroup " .. tostring(self) .. " is finished"), 2) end
  if self._aborting then error(RuntimeError("TaskGroup " .. tostring(self) .. " is shutting down"), 2) end
  local task = self._loop:create_task(coro, opts)
  self._tasks[task] = true
  self._n = self._n + 1
  task:add_done_callback(function(t) on_task_done(self, t) end)
  return task
end

function TaskGroup:__close(err)
  self._exiting = true
  local propagate_cancel = nil
  if err ~= nil then
    if type(err) == "table" and CancelledError:is(err) then propagate_cancel = err end
    if not self._aborting then abort(self) end
  end
  while self._n > 0 do
    local w = new_future(self._loop)
    self._on_completed = w
    local ok, e = pcall(await_future, w)
    self._on_completed = nil
    if not ok then
      if type(e) == "table" and CancelledError:is(e) then
        propagate_cancel = propagate_cancel or e
        if not self._aborting then abort(self) end
      else
        error(e, 0)
      end
    end
  end
  self._exited = true
  if self._parent_cancel_requested then
    -- the cancellation we asked for is ours, not the caller's
    if self._parent:uncancel() == 0 then propagate_cancel = nil end
  end
  if self._base_error then error(self._base_error, 0) end
  if propagate_cancel and #self._errors == 0 then error(propagate_cancel, 0) end
  if err ~= nil and not (type(err) == "table" and CancelledError:is(err)) then
    table.insert(self._errors, 1, err)
  end
  if #self._errors > 0 then
    local errors = self._errors
    self._errors = {}
    error(ExceptionGroup("unhandled errors in a TaskGroup", errors), 0)
  end
end

function TaskGroup:__tostring()
  local state = self._exited and "exited" or self._aborting and "aborting" or "entered"
  return ("<TaskGroup tasks=%d %s>"):format(self._n, state)
end

return M
