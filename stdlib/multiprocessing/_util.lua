--[[
multiprocessing._util: the argument checks the modules of multiprocessing
share (multiprocessing, synchronize, sharedctypes, pool, managers), and the
program's main script for the workers that run it again (spawn, and
mpi.futures), in one place that requires none of them.
]]

local exc = require "gilua.exceptions"
local args = require "gilua.args"

local ValueError, TypeError = exc.ValueError, exc.TypeError
local select, error, tostring = select, error, tostring

local M = {}

-- A constructor or method that takes no argument: Python's TypeError.
function M.no_args(fname, ...)
  local n = select("#", ...)
  if n > 0 then
    error(TypeError(("%s() takes no arguments (%d given)"):format(fname, n)), 3)
  end
end

-- An integer argument (an integral float is taken), at least `min`.
function M.check_int(value, fname, argname, min)
  value = args.check(value, "integer", fname, argname)
  if math.type(value) ~= "integer" then
    error(exc.OverflowError(("%s(): argument '%s' is too large: %s")
                            :format(fname, argname, tostring(value))), 3)
  end
  if min and value < min then
    error(ValueError(("%s(): argument '%s' must be at least %d, not %d")
                     :format(fname, argname, min, value)), 3)
  end
  return value
end

-- The script the program runs, which a spawned worker loads first: not
-- gilua -e's interpreter (its arg has no negative index: arg[0] is gilua
-- itself), nor a module of gilua -m, nor stdin. nil if none.
function M.main_script()
  local main = type(arg) == "table" and arg[-1] ~= nil and arg[0] or nil
  if main == "-" or (main and not io.open(main, "r")) then return nil end
  return main
end

return M
