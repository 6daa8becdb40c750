#!/usr/bin/env gilua
-- The state's allocator (vm/gilua_alloc.c) and the state's warn() output.
local t = require "tap"

-- A churn of blocks of every pool size and beyond: tables whose array and
-- hash parts grow across size classes (each growth is a realloc), strings
-- short and long, closures, coroutines. A ring of live objects is checked
-- against what was stored in them while the collector frees the others.
local churn = [[
local seed = 12345
local function rnd(n)
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed % n
end

local function make(k)
  local kind = k % 5
  if kind == 0 then                       -- array part, grown one by one
    local a = {}
    for i = 1, rnd(300) do a[i] = i * k end
    return a, function(o) for i = 1, #o do if o[i] ~= i * k then return false end end return true end
  elseif kind == 1 then                   -- hash part
    local h = {}
    for i = 1, rnd(120) do h["k" .. i] = k + i end
    return h, function(o)
      for key, v in pairs(o) do if v ~= k + tonumber(key:sub(2)) then return false end end
      return true
    end
  elseif kind == 2 then                   -- strings, 1 byte to 3000
    local s = string.rep(string.char(65 + k % 26), 1 + rnd(3000))
    return { s = s, n = #s }, function(o)
      return #o.s == o.n and o.s == string.rep(string.char(65 + k % 26), o.n)
    end
  elseif kind == 3 then                   -- closures with upvalues
    local a, b = k, k * 2
    local f = function() return a + b end
    return { f = f }, function(o) return o.f() == 3 * k end
  else                                    -- coroutines, suspended
    local co = coroutine.create(function(x)
      local deep = {}
      for i = 1, rnd(40) do deep[i] = x + i end
      coroutine.yield(#deep)
      return x
    end)
    local _, n = coroutine.resume(co, k)
    return { co = co, n = n }, function(o)
      local ok, x = coroutine.resume(o.co)
      return ok and x == k
    end
  end
end

local ring, checks = {}, {}
local bad, made = 0, 0
for round = 1, 40 do
  for _ = 1, 500 do
    local slot = 1 + rnd(2000)
    if ring[slot] and not checks[slot](ring[slot]) then bad = bad + 1 end
    made = made + 1
    ring[slot], checks[slot] = make(made)
  end
  if round % 10 == 0 then collectgarbage() end
end
for slot, o in pairs(ring) do
  if not checks[slot](o) then bad = bad + 1 end
end
print(made, bad, seed)
]]

local function run_with(env)
  local script = t.tmpname(".lua")
  local f = assert(io.open(script, "wb"))
  f:write(churn)
  f:close()
  local p = assert(io.popen(env .. " " .. t.shquote(t.gilua()) .. " " ..
                            t.shquote(script) .. " 2>&1"))
  local out = p:read("a")
  local ok, how, code = p:close()
  os.remove(script)
  return out, ok and how == "exit" and code == 0
end

local pooled, ok1 = run_with("GILUA_MALLOC=")
local system, ok2 = run_with("GILUA_MALLOC=system")
t.ok(ok1, "the churn runs on the pools")
t.ok(ok2, "the churn runs on the system's malloc (GILUA_MALLOC=system)")
local made, bad = pooled:match("^(%d+)%s+(%d+)")
t.is(tonumber(made), 20000, "20,000 objects made on the pools")
t.is(tonumber(bad), 0, "every live object still holds what was stored in it")
t.is(pooled, system, "the pools and malloc give the same run")

-- In-process too: blocks freed by the collector serve new ones.
local before = collectgarbage("count")
for _ = 1, 20 do
  local keep = {}
  for i = 1, 5000 do keep[i] = { i, tostring(i), { i } } end
end
collectgarbage(); collectgarbage()
t.ok(collectgarbage("count") < before + 1024,
     "freed blocks are given back to Lua's accounting")

-- warn(): off until "@on", one line per warning, "@off" silences it.
local res = t.run([[
warn("not shown")
warn("@on")
warn("first ", "in ", "pieces")
warn("second")
warn("@off")
warn("hidden")
]])
t.is(res.status, 0, "a script using warn() exits 0")
t.is(res.stderr, "Lua warning: first in pieces\nLua warning: second\n",
     "warn() prints only between @on and @off, a line per call")

t.done_testing()
