--[[
gilua.errors: an error caught in a task or a callback, kept together with
the traceback of where it happened, and reported the way Python reports
what nobody catches. Executors and the asyncio loop catch errors with
xpcall handlers of their own (each trims its own frames) and share these.

  box(e, tb)        the error and its traceback in one value (xpcall can
                    return only one); tb nil for exception objects, which
                    carry their own
  unbox(b)          e, tb again; a value that is not a box (the handler
                    itself failed) comes back as e, nil
  report(what, e, tb)  "what", the traceback, then the error, on stderr
]]

local BaseException = require("gilua.exceptions").BaseException

local M = {}

local BOX = {}

function M.box(e, tb)
  return setmetatable({ e, tb }, BOX)
end

function M.unbox(b)
  if getmetatable(b) == BOX then return b[1], b[2] end
  return b, nil
end

function M.report(what, e, tb)
  local ok, msg = pcall(tostring, e)
  if not ok then msg = "(unprintable error)" end
  if tb == nil and type(e) == "table" and BaseException:is(e) then
    tb = e.traceback
  end
  io.stderr:write(what, "\n", tb and (tb .. "\n") or "", msg, "\n")
  io.stderr:flush()
end

return M
