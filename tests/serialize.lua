#!/usr/bin/env gilua
-- The serializer and connection frames: what send accepts, recv returns;
-- classes are known by identity; data travels by value; frames are
-- checked before anything is allocated; a refused message leaves no
-- half-read frame behind.
local t = require "tap"
local mp = require "multiprocessing"
local _aio = require "_asyncio"
local Object = require "gilua.class"

local dumps, loads = mp.dumps, mp.loads

local function nest(n)
  local top = {}
  local c = top
  for _ = 2, n do c[1] = {}; c = c[1] end
  return top, c
end

-- depth: send and recv count it the same way
do
  local v = nest(200)
  local ok, back = pcall(function() return loads(dumps(v)) end)
  t.ok(ok, "a table nested 200 deep travels: " .. tostring(back))
  t.raises(function() dumps(nest(201)) end, TypeError,
           "201 deep is refused by send (TypeError), not lost at recv")
  local err = select(2, pcall(dumps, nest(201)))
  t.like(tostring(err), "nested more than 200 deep", "the message says why")
  -- a function at the deepest level counts as a level too
  local top, inner = nest(199)
  inner[1] = function() return 1 end
  t.ok(pcall(function() return loads(dumps(top)) end), "a function at level 200 travels")
  top, inner = nest(200)
  inner[1] = function() return 1 end
  t.raises(function() dumps(top) end, TypeError, "a function at level 201 is refused at send")
  -- a metatable is one level below its table
  top, inner = nest(199)
  setmetatable(inner, { x = 1 })
  t.ok(pcall(function() return loads(dumps(top)) end), "a metatable at level 200 travels")
  -- through a real pipe: what send accepts arrives
  local a, b = mp.Pipe()
  a:send(nest(200))
  local got = b:recv()
  local d = 0
  while got do d = d + 1; got = got[1] end
  t.is(d, 200, "200 levels through a Pipe")
  t.raises(function() a:send(nest(201)) end, TypeError, "201 levels refused by Connection.send")
  b:send("still in step")
  t.is(a:recv(), "still in step", "the pipe is still usable")
  a:close(); b:close()
end

-- classes by identity, not by shape
do
  local x = { __super = { a = 1 }, __index = 5, __name = "fake", v = 2 }
  local ok, y = pcall(function() return loads(dumps(x)) end)
  t.ok(ok, "a table with a field __super is data: " .. tostring(y))
  if ok then
    t.is(y.__index, 5, "its __index field travels")
    t.is(y.__name, "fake", "its __name field travels")
    t.is(y.v, 2, "its other fields travel")
    t.is(y.__super.a, 1, "its __super field travels as data")
  else
    for _ = 1, 4 do t.ok(false, "data with __super") end
  end
  local A = Object:extend("tests.serialize.A")
  local B = A:extend()
  function B:hello() return "hello " .. self.who end
  local b = B(); b.who = "world"
  local b2 = loads(dumps(b))
  t.is(b2:hello(), "hello world", "an instance of an unnamed subclass travels with its methods")
  t.ok(A:is(b2), "... and is still an instance of the named parent")
  t.is(loads(dumps(A)), A, "a named class travels as itself")
  -- a forged message that names a plain table as a parent class is refused
  local plain = dumps({ extend = function() end })
  t.raises(function()
    loads(string.char(plain:byte(1, 2)) .. string.char(14) .. plain:sub(3) .. string.char(7))
  end, ValueError, "a subclass whose parent is not a class is malformed")
end

-- data tables always travel by value, module functions by name
do
  package.loaded["tests_serialize_mod"] = { data = { x = 42 }, f = function() return "mod f" end }
  local mod = package.loaded["tests_serialize_mod"]
  local copy = loads(dumps(mod.data))
  t.isnt(copy, mod.data, "a module's data table is copied, not named")
  t.is(copy.x, 42, "... with its contents")
  t.is(loads(dumps(mod.f)), mod.f, "a module's function still travels by name")
  t.is(loads(dumps(mod)), mod, "a module itself travels by name")
  t.is(loads(dumps(mp.Process)), mp.Process, "a module's class travels as itself")
  -- in a child: the value sent, not the child's own copy of the module table
  local a, b = mp.Pipe()
  local p = mp.Process{ target = function()
    mod.data.x = 1       -- the child's module table differs from what is sent
    local got = b:recv()
    b:send(got.x)
  end }
  p:start()
  a:send(mod.data)
  t.is(a:recv(), 42, "a child receives the data sent, not its module's table")
  p:join()
  a:close(); b:close()
end

-- frames
local function raw(conn, bytes)
  local fd = conn:fileno()
  local i = 0
  while i < #bytes do i = i + _aio.send(fd, bytes, i) end
end

local function vmpeak()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmPeak:%s*(%d+)")
    if kb then return tonumber(kb) * 1024 end
  end
end

do
  local a, b = mp.Pipe()
  raw(a, string.pack("<I4", 0))
  t.raises(function() b:recv() end, ValueError, "recv of an empty frame: ValueError")
  raw(a, string.pack("<I4", 0))
  t.is(b:recv_bytes(), "", "recv_bytes of an empty frame: an empty string")
  a:close(); b:close()
end

do
  local a, b = mp.Pipe()
  raw(a, string.pack("<I4I8", 0xffffffff, 1 << 63))
  t.raises(function() b:recv() end, "bad message length",
           "a header announcing 2^63 bytes: OSError, nothing allocated")
  a:close(); b:close()
end

do
  local a, b = mp.Pipe()
  local before = vmpeak()
  raw(a, string.pack("<I4I8", 0xffffffff, 4 << 30) .. ("x"):rep(100))
  a:close()
  local ok, err = pcall(b.recv_bytes, b)
  t.ok(not ok and EOFError:is(err), "4 GiB announced, 100 bytes sent: EOFError (" .. tostring(err) .. ")")
  local grew = vmpeak() - before
  t.ok(grew < (1 << 30), ("no 4 GiB reserved up front (peak grew by %d MiB)"):format(grew >> 20))
  b:close()
end

do  -- a message longer than maxlength: OSError, then not readable (Python)
  local a, b = mp.Pipe()
  a:send_bytes(("y"):rep(1000))
  a:send_bytes("next")
  t.raises(function() b:recv_bytes(10) end, "bad message length",
           "recv_bytes(maxlength) refuses a longer message")
  local ok, err = pcall(b.recv_bytes, b)
  t.ok(not ok and OSError:is(err),
       "the connection is no longer readable, not out of step: " .. tostring(err))
  b:send_bytes("write side still works")
  t.is(a:recv_bytes(), "write side still works", "a duplex connection can still be written")
  a:close(); b:close()
  local r, w = mp.Pipe(false)
  w:send_bytes(("y"):rep(100))
  t.raises(function() r:recv_bytes(5) end, "bad message length", "read-only end: refused")
  t.ok(r.closed, "a read-only end is closed (Python's rule)")
  w:close()
  a, b = mp.Pipe()
  t.raises(function() a:recv_bytes(-1) end, ValueError, "negative maxlength: ValueError")
  t.raises(function() a:recv_bytes("x") end, TypeError, "a maxlength that is not an integer: TypeError")
  a:close(); b:close()
end

t.done_testing()
