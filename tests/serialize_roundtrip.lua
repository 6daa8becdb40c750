#!/usr/bin/env gilua
--[[ The serializer's round-trip property: for random values (deep, cyclic,
shared, with classes, functions and odd keys) what dumps accepts, loads
returns equal, structure included (shared parts stay shared, cycles stay
cycles, shared upvalues stay shared), and what it refuses is a TypeError.
A part of them also goes through a real Pipe. The seed is printed; set
ROUNDTRIP_SEED to replay one. ]]
local t = require "tap"
local mp = require "multiprocessing"
local Object = require "gilua.class"

local N = tonumber(os.getenv("ROUNDTRIP_N") or "") or 100000
local seed = tonumber(os.getenv("ROUNDTRIP_SEED") or "") or os.time()
math.randomseed(seed)
t.note("seed " .. seed)
local random = math.random

local Point = Object:extend("tests.roundtrip.Point")
function Point:norm() return self.x * self.x + self.y * self.y end
local Sub = Point:extend()
function Sub:twice() return 2 * self:norm() end

-- generators ------------------------------------------------------------------

local INTS = { 0, 1, -1, 2, math.maxinteger, math.mininteger, 1 << 53, (1 << 53) + 1,
               -(1 << 62), 255, 256, 65535 }
local FLOATS = { 0.0, -0.0, 0.5, -1.5, 1 / 0, -1 / 0, 0 / 0, 2.0 ^ 53, 2.0 ^ 63,
                 1e-310, 5e-324, 1.7976931348623157e308, 3.0, -3.0, math.pi }

local function rstring()
  local k = random(6)
  if k == 1 then return "" end
  if k == 2 then
    local b = {}
    for i = 1, random(0, 40) do b[i] = string.char(random(0, 255)) end
    return table.concat(b)
  end
  if k == 3 then return ("\0"):rep(random(1, 5)) end
  if k == 4 then return ("abc"):rep(random(1, 200)) end
  return tostring(random(1000))
end

local function scalar()
  local k = random(10)
  if k == 1 then return true end
  if k == 2 then return false end
  if k <= 4 then return INTS[random(#INTS)] end
  if k == 5 then return random(math.mininteger, math.maxinteger) end
  if k == 6 then return FLOATS[random(#FLOATS)] end
  if k == 7 then return random() * 10 ^ random(-300, 300) end
  return rstring()
end

local function key_of(pool)
  local k = random(10)
  if k <= 3 then return rstring() end
  if k == 4 then return INTS[random(#INTS)] end
  if k == 5 then   -- a float key, never NaN (Lua refuses it)
    local f = FLOATS[random(#FLOATS)]
    if f ~= f then f = 0.25 end
    return f
  end
  if k == 6 then return random(2) == 1 end
  if k == 7 and #pool > 0 then return pool[random(#pool)] end   -- a table key
  return random(1, 20)
end

local gen
local ntag = 0

local function closure(pool, depth)
  local k = random(5)
  if k == 1 then
    local up = gen(pool, depth + 1)
    return function() return up end
  elseif k == 2 then  -- two closures sharing one upvalue
    local n = random(100)
    local inc = function() n = n + 1; return n end
    local get = function() return n end
    return { inc, get }
  elseif k == 3 then
    return string.format          -- by name
  elseif k == 4 then
    return function(x) return print, x end     -- _ENV: the globals
  end
  local function fact(x) if x <= 1 then return 1 end return x * fact(x - 1) end
  return fact
end

function gen(pool, depth)
  if depth > 5 or random(2) == 1 then return scalar() end
  local k = random(12)
  if k == 1 and #pool > 0 then return pool[random(#pool)] end        -- shared
  if k == 2 then return closure(pool, depth) end
  if k == 3 then
    local p = (random(2) == 1 and Point or Sub)()
    p.x, p.y = random(10), random(10)
    pool[#pool + 1] = p
    return p
  end
  if k == 4 then   -- a chain, sometimes close to the depth limit
    local top = {}
    local c = top
    for _ = 2, (random(10) == 1 and random(150, 200) or random(2, 20)) do c[1] = {}; c = c[1] end
    c[2] = scalar()
    return top
  end
  local tbl = {}
  pool[#pool + 1] = tbl
  for i = 1, random(0, 5) do tbl[i] = gen(pool, depth + 1) end
  for _ = 1, random(0, 5) do
    local key = key_of(pool)
    if key ~= nil then tbl[key] = gen(pool, depth + 1) end
  end
  -- A table of the pool may become a key elsewhere. Its own tag keeps two
  -- pool tables of the same shape apart, so that the comparison below
  -- finds a key's image at once instead of guessing among look-alikes
  -- (a guess that next()'s order can make wrong: address-dependent).
  ntag = ntag + 1
  tbl["\0tag"] = ntag
  if random(8) == 1 then tbl.self = tbl end                          -- a cycle
  if random(10) == 1 then setmetatable(tbl, { __index = { hidden = random(9) } }) end
  if random(10) == 1 then tbl.__super = { fake = true }; tbl.__name = "data" end
  return tbl
end

-- structural equality ---------------------------------------------------------

local classes = getmetatable(Object).__classes
local registry = {}      -- named classes: travel as themselves
for _, c in ipairs({ Point }) do registry[c] = true end

local eq

-- A correspondence between the objects of the two values: fwd maps a's
-- objects to b's, inv marks b's objects already taken, up maps upvalue
-- ids. A trial (for a table key, whose image must be found among b's keys)
-- reads through to its parent and is committed only if it holds.
local function mapping(parent)
  local m = { fwd = {}, inv = {}, up = {}, parent = parent }
  if parent then
    setmetatable(m.fwd, { __index = parent.fwd })
    setmetatable(m.inv, { __index = parent.inv })
    setmetatable(m.up, { __index = parent.up })
  end
  return m
end

local function commit(m)
  local p = m.parent
  for k, v in next, m.fwd do p.fwd[k] = v end
  for k, v in next, m.inv do p.inv[k] = v end
  for k, v in next, m.up do p.up[k] = v end
end

local function same_number(a, b)
  if math.type(a) ~= math.type(b) then return false end
  if a ~= a then return b ~= b end
  if a == 0 and math.type(a) == "float" then return 1 / a == 1 / b end   -- -0.0
  return a == b
end

local function eq_fn(a, b, m)
  if debug.getinfo(a, "S").what == "C" then return a == b end
  if string.dump(a) ~= string.dump(b) then return false, "bytecode" end
  local i = 1
  while true do
    local na, va = debug.getupvalue(a, i)
    local nb, vb = debug.getupvalue(b, i)
    if na ~= nb then return false, "upvalue names" end
    if na == nil then return true end
    local ida, idb = debug.upvalueid(a, i), debug.upvalueid(b, i)
    if m.up[ida] ~= nil then
      if m.up[ida] ~= idb then return false, "upvalue sharing" end
    else
      m.up[ida] = idb
      local ok, why = eq(va, vb, m)
      if not ok then return false, "upvalue " .. na .. ": " .. tostring(why) end
    end
    i = i + 1
  end
end

local function eq_class(a, b, m)
  if registry[a] or a == Object then return a == b end
  if not classes[b] then return false, "not a class" end
  if rawget(a, "__super") ~= nil then
    local ok = eq_class(rawget(a, "__super"), rawget(b, "__super"), m)
    if not ok then return false, "parent class" end
  end
  for k, v in next, a do
    if type(k) ~= "string" or not k:match("^__") then
      local ok, why = eq(v, rawget(b, k), m)
      if not ok then return false, "class field " .. tostring(k) .. ": " .. tostring(why) end
    end
  end
  return true
end

local function is_obj(x) return type(x) == "table" or type(x) == "function" end

function eq(a, b, m)
  local ta = type(a)
  if ta ~= type(b) then return false, ta .. " vs " .. type(b) end
  if ta == "number" then return same_number(a, b), "number" end
  if ta ~= "table" and ta ~= "function" then return a == b, "value" end
  if a == _G then return b == _G, "globals" end
  if m.fwd[a] ~= nil then return m.fwd[a] == b, "sharing" end
  if m.inv[b] then return false, "sharing (image taken)" end
  m.fwd[a], m.inv[b] = b, true
  if ta == "table" and classes[a] then return eq_class(a, b, m) end
  if ta == "function" then return eq_fn(a, b, m) end
  local n = 0
  for k, v in next, a do
    n = n + 1
    if is_obj(k) and m.fwd[k] == nil then
      -- find k's image among b's keys: the one with which key and value agree
      local found = false
      for k2, v2 in next, b do
        if type(k2) == type(k) and not m.inv[k2] then
          local trial = mapping(m)
          if eq(k, k2, trial) and eq(v, v2, trial) then
            commit(trial)
            found = true
            break
          end
        end
      end
      if not found then return false, "no image for a table key" end
    else
      local kb = k
      if is_obj(k) then kb = m.fwd[k] end
      local ok, why = eq(v, rawget(b, kb), m)
      if not ok then return false, "[" .. tostring(k) .. "] " .. tostring(why) end
    end
  end
  for _ in next, b do n = n - 1 end
  if n ~= 0 then return false, "key count" end
  local ma, mb = getmetatable(a), getmetatable(b)
  if ma == nil then return mb == nil, "metatable" end
  if mb == nil then return false, "metatable lost" end
  return eq(ma, mb, m)
end

-- the property ------------------------------------------------------------------

local a, b = mp.Pipe()
local passed, refused, failures, bytes = 0, 0, 0, 0
local bad_refusals = 0
for i = 1, N do
  local pool = {}
  local v = gen(pool, 0)
  if random(50) == 1 then   -- something that cannot travel, somewhere inside
    local holder = type(v) == "table" and not classes[v] and v or {}
    holder.co = coroutine.create(function() end)
    if holder ~= v then v = { v, holder } end
  end
  local ok, msg = pcall(mp.dumps, v)
  if not ok then
    refused = refused + 1
    if not TypeError:is(msg) then
      bad_refusals = bad_refusals + 1
      if bad_refusals <= 3 then t.diag("not a TypeError: " .. tostring(msg)) end
    end
  else
    bytes = bytes + #msg
    local back
    if i % 100 == 0 then
      a:send_bytes(msg)
      local got = b:recv_bytes()
      ok, back = pcall(mp.loads, got)
    else
      ok, back = pcall(mp.loads, msg)
    end
    local same, why = false, tostring(back)
    if ok then same, why = eq(v, back, mapping()) end
    if same then passed = passed + 1
    else
      failures = failures + 1
      if failures <= 5 then
        t.diag(("value %d differs: %s (ROUNDTRIP_SEED=%d replays it)"):format(i, tostring(why), seed))
      end
    end
  end
end
a:close(); b:close()
t.note(("%d values: %d round-tripped (%.1f MB), %d refused by send"):format(N, passed,
  bytes / 1e6, refused))
t.is(failures, 0, "every value that send accepts comes back equal")
t.is(bad_refusals, 0, "what send refuses, it refuses with a TypeError")
t.ok(passed > N * 0.8, "most values travel")
t.ok(refused > 0, "values that cannot travel were tried too")
t.done_testing()
