#!/usr/bin/env gilua
-- OS errors: every module maps an errno to the same OSError subclass as
-- Python, with Python's fields (errno, strerror, filename).
local t = require "tap"
local subprocess = require "subprocess"
local asyncio = require "asyncio"
local mp = require "multiprocessing"
local shared_memory = require "multiprocessing.shared_memory"
local gil = require "gil"

-- Python's hierarchy -------------------------------------------------------------
do
  local under = {
    FileNotFoundError = OSError, FileExistsError = OSError, PermissionError = OSError,
    IsADirectoryError = OSError, NotADirectoryError = OSError, InterruptedError = OSError,
    ChildProcessError = OSError, ProcessLookupError = OSError, TimeoutError = OSError,
    BlockingIOError = OSError, ConnectionError = OSError,
    BrokenPipeError = ConnectionError, ConnectionAbortedError = ConnectionError,
    ConnectionResetError = ConnectionError, ConnectionRefusedError = ConnectionError,
  }
  for name, parent in pairs(under) do
    local cls = _G[name]
    t.ok(cls ~= nil and parent:is(cls(1, "x")), name .. " is a builtin under " ..
         tostring(rawget(parent, "__name")))
  end
end

local function caught(fn)
  local ok, e = pcall(fn)
  if ok then return nil end
  return e
end

-- subprocess: the cwd or the program -----------------------------------------------
do
  local e = caught(function() subprocess.run({"true"}, {cwd = "/no/such/dir"}) end)
  t.ok(FileNotFoundError:is(e), "run with a missing cwd: FileNotFoundError", tostring(e))
  t.ok(OSError:is(e), "... which is an OSError")
  t.is(e and e.errno, 2, "... errno 2 (ENOENT)")
  t.is(e and e.strerror, "No such file or directory", "... strerror")
  t.is(e and e.filename, "/no/such/dir", "... filename: the cwd")
  t.is(e and e.message, "[Errno 2] No such file or directory: '/no/such/dir'",
       "... the message Python prints")

  local file = os.tmpname()
  e = caught(function() subprocess.run({"true"}, {cwd = file}) end)
  t.ok(NotADirectoryError:is(e), "run with a file as cwd: NotADirectoryError", tostring(e))
  t.is(e and e.errno, 20, "... errno 20 (ENOTDIR)")

  -- a file without execute permission (even root may not exec it)
  local f = io.open(file, "w"); f:write("#!/bin/sh\n"); f:close()
  os.execute("chmod 644 " .. file)
  e = caught(function() subprocess.run({file}) end)
  t.ok(PermissionError:is(e), "running a file that is not executable: PermissionError",
       tostring(e))
  t.is(e and e.filename, file, "... naming the program")
  os.remove(file)
end

-- asyncio: connecting to a port nobody listens on -------------------------------------
do
  -- a port that was free a moment ago: listen, note the port, close
  local server = asyncio.run(asyncio.async(function()
    local srv = asyncio.start_server(function() end, "127.0.0.1", 0):await()
    local _, port = srv.sockets[1]:getsockname()
    srv:close()
    srv:wait_closed():await()
    return port
  end)())
  local e = caught(function()
    asyncio.run(asyncio.async(function()
      asyncio.open_connection("127.0.0.1", server):await()
    end)())
  end)
  t.ok(ConnectionRefusedError:is(e), "connecting to a closed port: ConnectionRefusedError",
       tostring(e))
  t.ok(ConnectionError:is(e) and OSError:is(e), "... a ConnectionError and an OSError")
  t.is(e and e.errno, 111, "... errno 111 (ECONNREFUSED)")
  t.like(e and e.message or "", "^%[Errno 111%] connect: Connection refused$",
         "... the message names the call")
end

-- multiprocessing: a closed peer, named shared memory ------------------------------------
do
  local a, b = mp.Pipe()
  b:close()
  local e = caught(function() for _ = 1, 100 do a:send(string.rep("x", 4096)) end end)
  t.ok(BrokenPipeError:is(e), "sending to a closed peer: BrokenPipeError", tostring(e))
  t.is(e and e.errno, 32, "... errno 32 (EPIPE)")
  a:close()

  e = caught(function() shared_memory.SharedMemory{name = "gilua-no-such-segment"} end)
  t.ok(FileNotFoundError:is(e), "opening a missing SharedMemory: FileNotFoundError", tostring(e))
  t.like(e and e.filename or "", "^/?gilua%-no%-such%-segment$", "... naming the segment")
  local shm = shared_memory.SharedMemory{create = true, size = 16}
  e = caught(function() shared_memory.SharedMemory{name = shm.name, create = true, size = 16} end)
  t.ok(FileExistsError:is(e), "creating an existing SharedMemory: FileExistsError", tostring(e))
  t.is(e and e.errno, 17, "... errno 17 (EEXIST)")
  shm:close()
  shm:unlink()
end

-- gil: a trace written to a directory ---------------------------------------------------
do
  local e = caught(function() gil.trace_start("/") end)
  t.ok(IsADirectoryError:is(e) or PermissionError:is(e),
       "a trace written to / is refused with Python's class", tostring(e))
  e = caught(function() gil.trace_start("/no/such/dir/trace.json") end)
  t.ok(FileNotFoundError:is(e), "a trace in a missing directory: FileNotFoundError", tostring(e))
  t.is(e and e.filename, "/no/such/dir/trace.json", "... naming the file")
end

t.done_testing()
