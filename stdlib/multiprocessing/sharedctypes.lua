--[[
multiprocessing.sharedctypes: values and arrays in shared memory, as
Python's multiprocessing/sharedctypes.py: RawValue, RawArray, and Value and
Array, which come with a lock. `require "multiprocessing"` gives them too
(mp.Value...). Their documentation is multiprocessing's
(docs/multiprocessing.md).
]]

local _mp = require "_multiprocessing"
local Object = require "gilua.class"
local exc = require "gilua.exceptions"
local args = require "gilua.args"
local RLock = require("multiprocessing.synchronize").RLock

local ValueError, TypeError = exc.ValueError, exc.TypeError
local type, select, error, tostring, pcall, next, rawget, setmetatable =
  type, select, error, tostring, pcall, next, rawget, setmetatable
local is_options = args.is_options

local M = {}

local TYPECODES = "bBhHiIlLqQfdc"

local function check_typecode(typecode, fname)
  if type(typecode) ~= "string" or #typecode ~= 1 or not TYPECODES:find(typecode, 1, true) then
    error(TypeError(("%s(): bad typecode (must be b, B, h, H, i, I, l, L, q, Q, f, d or c), not %s")
                    :format(fname, type(typecode) == "string" and ("'" .. typecode .. "'")
                                   or args.typename(typecode))), 3)
  end
end

-- Stores v at i; an error names the caller if v does not fit the type.
local function store(m, i, v, fname, what)
  local ok, err = pcall(m.set, m, i, v)
  if not ok then
    local msg = tostring(type(err) == "table" and err.message or err)
    error(TypeError(("%s(): %s: %s"):format(fname, what, msg)), 3)
  end
end

local RawValue = Object:extend("multiprocessing.sharedctypes.RawValue")
M.RawValue = function(typecode, ...)
  check_typecode(typecode, "RawValue")
  local m = _mp.rawshm(typecode, 1)
  local n = select("#", ...)
  local v = setmetatable({ _m = m, _typecode = typecode }, RawValue)
  if n > 0 and (...) ~= nil then store(m, 1, (...), "RawValue", "bad initial value") end
  return v
end
RawValue:property("value", function(self) return self._m:get(1) end,
                           function(self, x) self._m:set(1, x) end)
function RawValue:__tostring()
  return ("c_%s(%s)"):format(self._typecode, tostring(self._m:get(1)))
end

local Value = Object:extend("multiprocessing.sharedctypes.Synchronized")
function Value:get_lock() return self._lock end
function Value:get_obj() return self._raw end
function Value:acquire(...) if self._lock:acquire(...) then return self end return false end
function Value:release() return self._lock:release() end
function Value:__close() return self._lock:release() end
Value:property("value", function(self) return self._m:get(1) end,
                        function(self, x) self._m:set(1, x) end)
function Value:__tostring()
  return ("<Synchronized wrapper for c_%s(%s)>"):format(self._typecode, tostring(self._m:get(1)))
end

-- The lock option of Value and Array: true (a new RLock), false (none) or
-- a lock of one's own, which must have acquire and release (Python's check).
local function lock_arg(opts, fname)
  local lock = true
  if opts ~= nil and not is_options(opts) then
    error(TypeError(("%s(): the options must be a table such as {lock = false}, not %s")
                    :format(fname, args.typename(opts))), 3)
  end
  if opts then
    for k in next, opts do
      if k ~= "lock" then
        error(TypeError(("%s(): unexpected keyword argument '%s'"):format(fname, tostring(k))), 3)
      end
    end
    if opts.lock ~= nil then lock = opts.lock end
  end
  if lock ~= true and lock ~= false then
    local ok, acq, rel = pcall(function() return lock.acquire, lock.release end)
    if not ok or not (args.callable(acq) and args.callable(rel)) then
      error(exc.AttributeError(("%s(): lock %s has no method 'acquire'")
                               :format(fname, args.typename(lock))), 3)
    end
  end
  return lock
end

function M.Value(typecode, ...)
  local n = select("#", ...)
  local init, opts = ...
  if n == 1 and is_options(init) then init, opts = nil, init; n = 0 end
  check_typecode(typecode, "Value")
  local lock = lock_arg(opts, "Value")
  local raw = M.RawValue(typecode)
  if n > 0 and init ~= nil then store(raw._m, 1, init, "Value", "bad initial value") end
  if lock == false then return raw end
  if lock == true then lock = RLock() end
  return setmetatable({ _m = raw._m, _raw = raw, _lock = lock, _typecode = typecode }, Value)
end

-- Arrays: indexed 1..n, with #.
local ARRAY_METHODS = {}
local function array_mt(name, methods)
  return {
    __name = name,
    __index = function(self, k)
      if math.type(k) == "integer" then return rawget(self, "_m"):get(k) end
      if k == "value" and rawget(self, "_typecode") == "c" then
        return (rawget(self, "_m"):bytes():gsub("%z.*", ""))
      end
      if k == "raw" and rawget(self, "_typecode") == "c" then return rawget(self, "_m"):bytes() end
      return methods[k]
    end,
    __newindex = function(self, k, v)
      if math.type(k) == "integer" then return rawget(self, "_m"):set(k, v) end
      error(exc.AttributeError("cannot set '" .. tostring(k) .. "' on an Array"), 2)
    end,
    __len = function(self) return rawget(self, "_m"):len() end,
    __close = function(self) return rawget(self, "_lock"):release() end,
    __tostring = function(self)
      local m, out = rawget(self, "_m"), {}
      for i = 1, m:len() do out[i] = tostring(m:get(i)) end
      return ("<%s c_%s_Array_%d [%s]>"):format(name, rawget(self, "_typecode"), m:len(),
                                               table.concat(out, ", "))
    end,
  }
end

function ARRAY_METHODS.get_lock(self) return rawget(self, "_lock") end
function ARRAY_METHODS.get_obj(self) return rawget(self, "_raw") end
function ARRAY_METHODS.acquire(self, ...)
  if rawget(self, "_lock"):acquire(...) then return self end
  return false
end
function ARRAY_METHODS.release(self) return rawget(self, "_lock"):release() end
function ARRAY_METHODS.totable(self)
  local m, t = rawget(self, "_m"), {}
  for i = 1, m:len() do t[i] = m:get(i) end
  return t
end

local RAW_ARRAY = array_mt("RawArray", ARRAY_METHODS)
local SYNC_ARRAY = array_mt("SynchronizedArray", ARRAY_METHODS)

local function raw_array(typecode, size_or_values, fname)
  check_typecode(typecode, fname)
  local values
  if type(size_or_values) == "table" then values = size_or_values end
  local n = values and #values or size_or_values
  if type(size_or_values) == "string" then
    values, n = {}, #size_or_values
    for i = 1, n do values[i] = size_or_values:sub(i, i) end
  end
  if math.type(n) ~= "integer" then
    error(TypeError(("%s(): argument 'size_or_initializer' must be an integer, a table or a string, not %s")
                    :format(fname, args.typename(size_or_values))), 3)
  end
  if n < 0 then
    error(ValueError(("%s(): array length must be >= 0, not %d"):format(fname, n)), 3)
  end
  if n > (1 << 40) then
    error(exc.OverflowError(("%s(): array length %d is too large"):format(fname, n)), 3)
  end
  local m = _mp.rawshm(typecode, n)
  if values then
    for i = 1, n do store(m, i, values[i], fname, ("bad value at index %d"):format(i)) end
  end
  return setmetatable({ _m = m, _typecode = typecode }, RAW_ARRAY)
end

function M.RawArray(typecode, size_or_values)
  return raw_array(typecode, size_or_values, "RawArray")
end

function M.Array(typecode, size_or_values, opts)
  local lock = lock_arg(opts, "Array")
  local raw = raw_array(typecode, size_or_values, "Array")
  if lock == false then return raw end
  if lock == true then lock = RLock() end
  return setmetatable({ _m = rawget(raw, "_m"), _raw = raw, _lock = lock,
                        _typecode = typecode }, SYNC_ARRAY)
end

return M
