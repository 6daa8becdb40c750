--[[
multiprocessing.shared_memory: SharedMemory, a block of memory with a name
that any process of the user can attach to (POSIX shm_open, mode 0600).

    local shared_memory = require "multiprocessing.shared_memory"
    local shm = shared_memory.SharedMemory{create = true, size = 16}
    shm.buf[1] = 42; shm.buf:write(2, "hello")
    local other = shared_memory.SharedMemory(shm.name)  -- or {name = ...}
    print(other.buf[1], other.buf:read(2, 6))           -- 42  hello
    other:close(); shm:close(); shm:unlink()

Where Lua and Python differ: `buf` is indexed by byte 1..size (#buf is the
size) and has read(i, j) -> string and write(i, s) for slices; the size
is the size of the block (Linux rounds nothing: what was asked).
]]

local _mp = require "_multiprocessing"
local Object = require "gilua.class"
local exc = require "gilua.exceptions"
local args = require "gilua.args"

local M = {}

local SharedMemory = Object:extend("multiprocessing.shared_memory.SharedMemory")
M.SharedMemory = SharedMemory

local ARGS = { "name", "create", "size", fname = "SharedMemory" }

function SharedMemory:init(...)
  local name, create, size = args.get(ARGS, ...)
  create = create and true or false
  size = size or 0
  if not create and name == nil then
    error(exc.ValueError("'name' can only be None if create=True"), 3)
  end
  if size < 0 then error(exc.ValueError("'size' must be a positive integer"), 3) end
  if name == nil then
    local hex = _mp.random(8):gsub(".", function(c) return ("%02x"):format(c:byte()) end)
    name = "psm_" .. hex
  end
  name = tostring(name):gsub("^/", "")
  local buf, actual = _mp.shm_open("/" .. name, create, size)
  self._name, self._buf, self.size = name, buf, actual
  self._owner = create
end

SharedMemory:property("name", function(self) return self._name end)
SharedMemory:property("buf", function(self)
  if self._closed then return nil end
  return self._buf
end)

function SharedMemory:close()
  if not self._closed then
    self._closed = true
    self._buf:release()
  end
end

function SharedMemory:unlink()
  _mp.shm_unlink("/" .. self._name)
end

SharedMemory.__close = SharedMemory.close

function SharedMemory:__tostring()
  return ("SharedMemory(%q, size=%d)"):format(self._name, self.size)
end

return M
