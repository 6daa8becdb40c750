--[[
A TCP echo server and many concurrent clients, all on one thread: the
asyncio row of the course's table (I/O concurrency without threads).
The server listens on 127.0.0.1 (a free port), each client sends a few
lines and checks the echoes, then everything stops by itself.

    gilua samples/asyncio/echo_server.lua [clients] [lines]
]]
local asyncio = require "asyncio"
local time = require "time"

local NCLIENTS = tonumber(arg and arg[1]) or 100
local NLINES = tonumber(arg and arg[2]) or 10

local handle = asyncio.async(function(reader, writer)
  while true do
    local line = reader:readline():await()
    if line == "" then break end          -- the client closed its side
    writer:write(line)
    writer:drain():await()
  end
  writer:close()
  writer:wait_closed():await()
end, "handle")

local client = asyncio.async(function(port, id)
  local reader, writer = asyncio.open_connection("127.0.0.1", port):await()
  local ok = 0
  for i = 1, NLINES do
    local msg = ("client %d line %d\n"):format(id, i)
    writer:write(msg)
    writer:drain():await()
    if reader:readline():await() == msg then ok = ok + 1 end
  end
  writer:close()
  writer:wait_closed():await()
  return ok
end, "client")

local main = asyncio.async(function()
  local server = asyncio.start_server(handle, "127.0.0.1", 0):await()
  local _, port = server.sockets[1]:getsockname()
  print(("serving on 127.0.0.1:%d"):format(port))
  local t0 = time.perf_counter()
  local clients = {}
  for i = 1, NCLIENTS do clients[i] = client(port, i) end
  local results = asyncio.gather(table.unpack(clients)):await()
  local dt = time.perf_counter() - t0
  local total = 0
  for i = 1, NCLIENTS do total = total + results[i] end
  print(("%d clients x %d lines: %d echoes correct in %.3f s (%.0f round trips/s)")
        :format(NCLIENTS, NLINES, total, dt, total / dt))
  server:close()
  server:wait_closed():await()
end, "main")

asyncio.run(main())
