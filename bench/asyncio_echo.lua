-- Echo round trips over loopback: 10 clients x 2,000 round trips of a
-- short line each, through asyncio streams (server and clients in one loop).
local asyncio = require "asyncio"
local time = require "time"
local NCLIENTS, NTRIPS = 10, 2000

local handle = asyncio.async(function(reader, writer)
  while true do
    local line = reader:readline():await()
    if line == "" then break end
    writer:write(line)
    writer:drain():await()
  end
  writer:close()
end)

local client = asyncio.async(function(port)
  local reader, writer = asyncio.open_connection("127.0.0.1", port):await()
  local ok = 0
  for _ = 1, NTRIPS do
    writer:write("ping\n")
    writer:drain():await()
    if reader:readline():await() == "ping\n" then ok = ok + 1 end
  end
  writer:close()
  return ok
end)

local main = asyncio.async(function()
  local server = asyncio.start_server(handle, "127.0.0.1", 0):await()
  local _, port = server.sockets[1]:getsockname()
  local t0 = time.perf_counter()
  local cs = {}
  for i = 1, NCLIENTS do cs[i] = client(port) end
  local res = asyncio.gather(table.unpack(cs)):await()
  local dt = time.perf_counter() - t0
  local total = 0
  for i = 1, NCLIENTS do total = total + res[i] end
  print(("time=%.6f"):format(dt))
  print("check=" .. total)
  io.stderr:write(("%.0f round trips/s\n"):format(total / dt))
  server:close()
end)

asyncio.run(main())
