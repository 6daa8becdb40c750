--[[
gilua.args: reading Python-style arguments in Lua modules.

A call takes either positional arguments or, in place of Python's keyword
arguments, one options table:

    local SPEC = {"blocking", "timeout", fname = "Semaphore.acquire"}
    function Semaphore:acquire(...)
      local blocking, timeout = args.get(SPEC, ...)

`args.get` returns the positional arguments as they are, unless there is
exactly one argument and it is a plain table (no metatable): then it
returns that table's fields named in SPEC, in order. With `fname` set, an
unknown field or too many positional arguments is a TypeError, as Python
reports unexpected keywords. Keep SPEC tables at module level: they are
read on every call and cache their key set.

A plain table passed alone is always taken as options; a function whose
single argument may itself be a plain table (a queue item) must not use
args.get for it.
]]

local exc = require "gilua.exceptions"
local core = require "_gilua"
local TypeError, ValueError = exc.TypeError, exc.ValueError

local type, select, next, error, tostring, getmetatable =
  type, select, next, error, tostring, getmetatable
local mtype, huge = math.type, math.huge
local unpack, move = table.unpack, table.move

local M = {}

local function fields(t, names, i, n)
  if i > n then return end
  return t[names[i]], fields(t, names, i + 1, n)
end

local function keyset(spec)
  local set = spec._keys
  if not set then
    set = {}
    for i = 1, #spec do set[spec[i]] = true end
    spec._keys = set
  end
  return set
end

local function fail(cls, fname, fmt, ...)
  local msg = fmt:format(...)
  if fname then msg = fname .. "(): " .. msg end
  error(cls(msg), 3)
end

-- True for a table that stands for keyword arguments.
function M.is_options(x)
  return type(x) == "table" and getmetatable(x) == nil
end

function M.get(spec, ...)
  local n = select("#", ...)
  if n == 1 then
    local t = ...
    if type(t) == "table" and getmetatable(t) == nil then
      local fname = spec.fname
      if fname then
        local set = keyset(spec)
        for k in next, t do
          if not set[k] then
            fail(TypeError, fname, "unexpected keyword argument '%s'", tostring(k))
          end
        end
      end
      return fields(t, spec, 1, #spec)
    end
  elseif n > #spec and spec.fname then
    fail(TypeError, spec.fname, "takes at most %d arguments (%d given)", #spec, n)
  end
  return ...
end

-- The name of v's type for messages: its class or metatable __name, else
-- "integer"/"float" or Lua's type name.
local function typename(v)
  local mt = getmetatable(v)
  if type(mt) == "table" and type(mt.__name) == "string" then return mt.__name end
  return mtype(v) or type(v)
end
M.typename = typename

-- A function, or an object whose metatable has __call.
local function callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end
M.callable = callable

--[[
Checks that `value` has the Lua type `tname` and returns it; otherwise a
TypeError naming the function and the argument. Besides Lua's type names,
`tname` may be "integer" (an integral number, returned as an integer) or
"callable" (a function or an object with __call).
]]
function M.check(value, tname, fname, argname)
  local ok
  if tname == "integer" then
    if mtype(value) == "integer" then return value end
    if mtype(value) == "float" and value == value and value % 1 == 0
       and value > -huge and value < huge then
      return math.tointeger(value) or value
    end
    ok = false
  elseif tname == "callable" then
    ok = callable(value)
  else
    ok = type(value) == tname
  end
  if not ok then
    fail(TypeError, fname, "argument '%s' must be %s, not %s",
         tostring(argname), tname, typename(value))
  end
  return value
end

-- Like check, but nil is allowed and replaced by `default`.
function M.opt(value, tname, fname, argname, default)
  if value == nil then return default end
  return M.check(value, tname, fname, argname)
end

--[[
timeout(value, fname, negative, argname) -> seconds, or nil for no limit:
the one rule for every wait, Python's (the C side's gilua_timeout). nil is
no limit; not a number is a TypeError, NaN a ValueError, more than
TIMEOUT_MAX (math.huge among them) an OverflowError. A negative value
waits not at all (negative = "zero", the default: Event.wait, join,
Condition, futures, multiprocessing, subprocess), is a ValueError ("error":
queue.Queue, time.sleep) or, for -1 exactly, no limit ("lock":
Lock.acquire). Messages name fname and argname (default "timeout").
]]
M.timeout = core.timeout
M.TIMEOUT_MAX = core.TIMEOUT_MAX

--[[
apply(fn, a, kw): Python's fn(*args, **kwargs) for threads, processes and
timers: calls fn with the values of the array `a` (its `n` field when
present, so nils travel, else #a) and, when `kw` is given (not nil or
false), `kw` as one more last argument; returns what fn returns.
]]
function M.apply(fn, a, kw)
  local n = a.n or #a
  if not kw then return fn(unpack(a, 1, n)) end
  local full = move(a, 1, n, 1, {})
  full[n + 1] = kw
  return fn(unpack(full, 1, n + 1))
end

-- Lua truthiness, with nil meaning the default.
function M.bool(value, default)
  if value == nil then return default end
  return value ~= false
end

return M
