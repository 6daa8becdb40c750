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

A block that a process creates and nobody unlinks is removed when the
last process that could use it has ended, with a warning on stderr, as
Python's resource tracker does: the first block made starts a small
tracker process (spawned: it holds no other descriptor) that the creating
processes, and the children they fork, tell of each block made and
unlinked through a pipe; when every write end is closed it unlinks what is
left.
]]

local _mp = require "_multiprocessing"
local Object = require "gilua.class"
local exc = require "gilua.exceptions"
local args = require "gilua.args"

local M = {}

-- The resource tracker ------------------------------------------------------------

local tracker             -- the write end of the tracker's pipe, once started

local function start_tracker()
  local r, w = _mp.Pipe(false)
  local fd = r:fileno()
  local exe = _mp.executable()
  _mp.spawnv(exe, { exe, "-e",
    ("require('multiprocessing.shared_memory')._tracker_main(%d)"):format(fd) }, { fd })
  r:close()
  return w
end

-- Tells the tracker; a failure to do so must not fail the caller.
local function track(op, name)
  if tracker == nil then
    local ok, w = pcall(start_tracker)
    if not ok then return end
    tracker = w
  end
  pcall(tracker.send_bytes, tracker, op .. " " .. name)
end

-- The tracker process: Ctrl-C (sent to the whole process group) does not
-- stop it; the end of its pipe does.
function M._tracker_main(fd)
  local conn = _mp.Connection(fd, -1)
  local live, order = {}, {}
  while true do
    local ok, msg = pcall(conn.recv_bytes, conn, 4096)
    if ok then
      local op, name = msg:match("^(%u+) (.+)$")
      if op == "REGISTER" then
        if not live[name] then order[#order + 1] = name end
        live[name] = true
      elseif op == "UNREGISTER" then
        live[name] = nil
      end
    elseif not exc.KeyboardInterrupt:is(msg) then
      break
    end
  end
  local left = {}
  for _, name in ipairs(order) do if live[name] then left[#left + 1] = name end end
  if #left > 0 then
    local quoted = {}
    for i, name in ipairs(left) do quoted[i] = "'/" .. name .. "'" end
    io.stderr:write(("resource_tracker: There appear to be %d leaked shared_memory " ..
                     "objects to clean up at shutdown: [%s]\n"):format(#left, table.concat(quoted, ", ")))
    for _, name in ipairs(left) do
      local ok, err = pcall(_mp.shm_unlink, "/" .. name)
      if not ok then
        io.stderr:write(("resource_tracker: '/%s': %s\n"):format(name, tostring(err)))
      end
    end
  end
  _mp._exit(0)
end

-- SharedMemory --------------------------------------------------------------------

local SharedMemory = Object:extend("multiprocessing.shared_memory.SharedMemory")
M.SharedMemory = SharedMemory

local ARGS = { "name", "create", "size", fname = "SharedMemory" }

--[[ A block goes elsewhere (another interpreter, a spawned process) by
name, as Python pickles it: its buffer is attached again there. ]]
local names = setmetatable({}, { __mode = "k" })     -- buffer -> name

function M._attach(state)
  return (_mp.shm_open("/" .. state[1], false, state[2]))
end


function SharedMemory:init(...)
  local name, create, size = args.get(ARGS, ...)
  create = create and true or false
  if name ~= nil then
    args.check(name, "string", "SharedMemory", "name")
    if name:find("\0", 1, true) then
      error(exc.ValueError("SharedMemory(): embedded null character in 'name'"), 3)
    end
    name = name:gsub("^/", "")
    if name == "" or name:find("/", 1, true) then
      error(exc.ValueError("SharedMemory(): 'name' must be a name without '/', not '" .. name .. "'"), 3)
    end
  end
  if size == nil then size = 0 end
  size = args.check(size, "integer", "SharedMemory", "size")
  if math.type(size) ~= "integer" or size < 0 then
    error(exc.ValueError("SharedMemory(): 'size' must be a positive integer"), 3)
  end
  if create and size == 0 then
    error(exc.ValueError("SharedMemory(): 'size' must be a positive number different from zero"), 3)
  end
  if not create and name == nil then
    error(exc.ValueError("SharedMemory(): 'name' can only be None if create=True"), 3)
  end
  if name == nil then
    local hex = _mp.random(8):gsub(".", function(c) return ("%02x"):format(c:byte()) end)
    name = "psm_" .. hex
  end
  local buf, actual = _mp.shm_open("/" .. name, create, size)
  self._name, self._buf, self.size = name, buf, actual
  names[buf] = name
  local mt = getmetatable(buf)
  if mt.__mp_reduce == nil then
    mt.__mp_reduce = function(b) return M._attach, { names[b], #b } end
  end
  self._owner = create
  if create then track("REGISTER", name) end
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
  track("UNREGISTER", self._name)
end

SharedMemory.__close = SharedMemory.close

function SharedMemory:__tostring()
  return ("SharedMemory(%q, size=%d)"):format(self._name, self.size)
end

return M
