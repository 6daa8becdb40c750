#!/usr/bin/env gilua
--[[
seeds.lua DIR: writes the seed corpus of the decoder's fuzz target
(tests/fuzz/decode.c) into DIR, one file a message. Every seed is a real
message, made by the encoder (multiprocessing.dumps) from a value that
exercises one feature of the format: each scalar kind, strings, arrays and
hashes, metatables, shared and cyclic references, functions with upvalues
(shared ones too), the globals, named classes and unnamed subclasses,
values sent by name, reduced userdata, and nesting to the depth limit.
Seeds that start with 'F' are streams of frames as they arrive on a
connection (a message, raw bytes, an empty frame...), read from a real
Pipe.
The classes and the module fuzzmod are defined as the fuzz target defines
them.
]]
local mp = require "multiprocessing"
local Object = require "gilua.class"

local dir = assert(arg[1], "usage: seeds.lua DIR")

local Point = Object:extend("fuzz.Point")
local Sub = Point:extend()
package.loaded.fuzzmod = { f = function(x) return x end, Sub = Sub, data = { 1, 2 } }
local fuzzmod = package.loaded.fuzzmod

local seeds = {}
local function add(v) seeds[#seeds + 1] = mp.dumps(v) end

-- scalars
for _, v in ipairs({ true, false, 0, 1, -1, math.maxinteger, math.mininteger,
                     0.5, -0.0, 1 / 0, -1 / 0, 2 ^ 53, 1e-300, "", "a", ("x"):rep(300),
                     "\0\1\2\255" }) do
  add(v)
end
add(nil)
add(0 / 0)
-- tables
add({})
add({ 1, 2, 3 })
add({ a = 1, b = "two", [3.5] = true, [false] = 0, [-1] = "neg" })
add({ 1, nil, 3, n = 3 })
add({ [1] = "a", [2] = "b", [10] = "sparse", nested = { deep = { x = 1 } } })
add(setmetatable({ x = 1 }, { __index = { y = 2 } }))
-- shared and cyclic references
do
  local shared = { "s" }
  add({ shared, shared, { shared } })
  local cyc = {}
  cyc.self = cyc
  cyc[1] = cyc
  add(cyc)
  local a, b = {}, {}
  a.b, b.a = b, a
  add({ a, b })
  local k = { "key" }
  add({ [k] = k })
end
-- functions: upvalues, shared upvalues, recursion, globals
do
  local n = 0
  local function inc() n = n + 1; return n end
  local function get() return n end
  add(inc)
  add({ inc, get })
  local function fact(x) if x <= 1 then return 1 end return x * fact(x - 1) end
  add(fact)
  add(function() return print end)
  add(function(...) return select("#", ...) end)
  local t = { 1 }
  add(function() return t end)
end
add(_G)
-- classes: a named class, an instance, an unnamed subclass and its instance
add(Point)
local p = Point(); p.x, p.y = 1, 2
add(p)
add(Sub)
local s = Sub(); s.z = 3
add(s)
add({ p, s, Sub, Point })
add(ValueError("boom"))
-- by name: a module, its function, its class, a standard function
add(fuzzmod)
add(fuzzmod.f)
add(fuzzmod.Sub)
add(fuzzmod.data)
add(string.format)
add(io.stdout)
add(math)
-- a reduced userdata: rebuilt by a named function from a state
do
  local lock = mp.Lock()
  local mt = getmetatable(lock._s)
  local saved = mt.__mp_reduce
  mt.__mp_reduce = function() return fuzzmod.f, { state = 1, "x" } end
  add(lock._s)
  add({ lock._s, lock._s })
  mt.__mp_reduce = saved
end
-- nesting to the limit
do
  local top = {}
  local c = top
  for _ = 2, 200 do c[1] = {}; c = c[1] end
  add(top)
  c = top
  for _ = 2, 199 do c = c[1] end
  c[1] = function() return 1 end
  add(top)
end
-- a mixture as a pool task or manager request would carry
add(table.pack("call", 1, "method", { 1, 2, 3 }, nil, { k = "v" }))
add({ [0] = 7, true, { 1, 2 }, n = 2 })

-- streams of frames, read raw from the far end of a real Pipe
do
  local aio = require "_asyncio"
  local function stream(write)
    local a, b = mp.Pipe()
    write(a)
    a:close()
    local parts = { "F" }
    while true do
      local got = aio.recv(b:fileno(), 16384)
      if got == nil or got == "" then break end
      parts[#parts + 1] = got
    end
    b:close()
    seeds[#seeds + 1] = table.concat(parts)
  end
  stream(function(c) c:send({ 1, "two", { 3 } }); c:send_bytes("raw bytes"); c:send(nil) end)
  stream(function(c) c:send_bytes(""); c:send("after an empty frame") end)
  stream(function(c) c:send_bytes(("x"):rep(100)); c:send(42) end)
  stream(function(c) c:send(p); c:send_bytes(mp.dumps(s)); c:send(fuzzmod.f) end)
end

os.execute("mkdir -p '" .. dir .. "'")
for i, m in ipairs(seeds) do
  local f = assert(io.open(("%s/seed-%03d"):format(dir, i), "wb"))
  f:write(m)
  f:close()
end
print(("%d seeds written to %s"):format(#seeds, dir))
