--[[
asyncio: Python's asyncio on Lua coroutines (docs/asyncio.md).

    local asyncio = require "asyncio"
    local main = asyncio.async(function()
      local t = asyncio.create_task(other())
      asyncio.sleep(1):await()
      return t:await()
    end)
    asyncio.run(main())

This module gathers asyncio.core (loop, futures, tasks, sleep),
asyncio.combinators (gather, wait, wait_for, shield, as_completed,
timeout), asyncio.runners (run, Runner, the bridges to other threads),
asyncio.locks, asyncio.queues, asyncio.taskgroups, asyncio.streams and
asyncio.subprocess into one table, as Python's package does.
]]

local M = {}
for _, name in ipairs{ "asyncio.core", "asyncio.combinators",
                       "asyncio.runners", "asyncio.locks", "asyncio.queues",
                       "asyncio.taskgroups", "asyncio.streams",
                       "asyncio.subprocess" } do
  local ok, mod = pcall(require, name)
  if ok then
    for k, v in pairs(mod) do
      if M[k] == nil then M[k] = v end
    end
  elseif not tostring(mod):find("module '" .. name .. "' not found", 1, true) then
    error(mod, 0)
  end
end
return M
