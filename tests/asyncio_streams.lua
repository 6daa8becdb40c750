#!/usr/bin/env gilua
-- asyncio streams over TCP on loopback: a 200-connection echo exchange
-- that loses nothing (bulk data larger than the socket buffers, so that
-- writes are partial and drain() waits), readline/readuntil/readexactly/
-- read, EOF and IncompleteReadError, limits, a refused connection, and the
-- GIL released while the loop waits for sockets.
local t = require "tap"
local asyncio = require "asyncio"
local util = require "support.util"

local async, run, sleep = asyncio.async, asyncio.run, asyncio.sleep

local echo = async(function(reader, writer)
  while true do
    local data = reader:read(65536):await()
    if data == "" then break end
    writer:write(data)
    writer:drain():await()
  end
  writer:close()
  writer:wait_closed():await()
end, "echo")

local function with_server(cb, body)
  return run(async(function()
    local server <close> = asyncio.start_server(cb, "127.0.0.1", 0):await()
    local host, port = server.sockets[1]:getsockname()
    return body(port, host, server)
  end)())
end

-- 200 concurrent connections, each echoing 100 KB --------------------------------------------
do
  local N, SIZE = 200, 100000
  local ok_count, bytes = with_server(echo, function(port)
    local client = async(function(id)
      local reader, writer = asyncio.open_connection("127.0.0.1", port):await()
      local chunk = ("%06d"):format(id):rep(SIZE // 6 + 1):sub(1, SIZE)
      local sender = asyncio.create_task(async(function()
        for i = 1, #chunk, 7000 do
          writer:write(chunk:sub(i, i + 6999))
          writer:drain():await()
        end
        writer:write_eof()
      end)())
      local back = reader:read(-1):await()
      sender:await()
      writer:close()
      writer:wait_closed():await()
      return back == chunk, #back
    end)
    local cs = {}
    for i = 1, N do cs[i] = client(i) end
    local res = asyncio.gather(table.unpack(cs)):await()
    local good, total = 0, 0
    for i = 1, N do if res[i] then good = good + 1 end end
    return good, N * SIZE
  end)
  t.is(ok_count, N, "200 connections x 100 KB echoed back intact")
end

-- line-oriented reads ---------------------------------------------------------------------------
do
  local serve = async(function(reader, writer)
    writer:write("line one\nline two\nrecord;rest-12345")
    writer:drain():await()
    writer:close()
  end)
  with_server(serve, function(port)
    local r, w = asyncio.open_connection("127.0.0.1", port):await()
    t.is(r:readline():await(), "line one\n", "readline")
    t.is(r:readuntil("\n"):await(), "line two\n", "readuntil")
    t.is(r:readuntil(";"):await(), "record;", "readuntil a separator")
    t.is(r:readexactly(5):await(), "rest-", "readexactly")
    local e = t.raises(function() r:readexactly(10):await() end, asyncio.IncompleteReadError,
                       "readexactly past the end")
    t.is(e and e.partial, "12345", "IncompleteReadError.partial")
    t.is(r:readline():await(), "", "readline at EOF returns ''")
    t.ok(r:at_eof(), "at_eof")
    w:close()
  end)

  local long = async(function(_, writer)
    writer:write(("x"):rep(300) .. "\n")
    writer:close()
  end)
  run(async(function()
    local server = asyncio.start_server(long, "127.0.0.1", 0):await()
    local _, port = server.sockets[1]:getsockname()
    local r, w = asyncio.open_connection{host = "127.0.0.1", port = port, limit = 100}:await()
    t.raises(function() r:readuntil("\n"):await() end, asyncio.LimitOverrunError,
             "readuntil over the limit: LimitOverrunError")
    w:close()
    server:close()
    server:wait_closed():await()
  end)())
end

-- closing our side while a read waits ends the read -------------------------------------------
do
  local silent = async(function(reader, writer)
    reader:read(-1):await()
    writer:close()
  end)
  with_server(silent, function(port)
    local r, w = asyncio.open_connection("127.0.0.1", port):await()
    local reading = asyncio.create_task(r:read(100))
    sleep(0.02):await()
    w:close()
    t.is(asyncio.wait_for(reading, 2):await(), "", "a read waiting when the writer closes returns ''")
  end)
end

-- errors ------------------------------------------------------------------------------------------
do
  local port = with_server(echo, function(port, _, server) return port end)
  run(async(function()
    t.raises(function() asyncio.open_connection("127.0.0.1", port):await() end,
             ConnectionRefusedError, "a closed port: ConnectionRefusedError")
  end)())
end

-- the loop waits for sockets without the GIL -----------------------------------------------------
do
  local slow = async(function(reader, writer)
    sleep(0.3):await()
    writer:write("late\n")
    writer:close()
  end)
  local ticks, dt, got = util.ticks_during(function()
    return with_server(slow, function(port)
      local r, w = asyncio.open_connection("127.0.0.1", port):await()
      local line = r:readline():await()
      w:close()
      return line
    end)
  end)
  t.is(got, "late\n", "the answer came")
  t.ok(ticks >= 10, "another thread ran while the loop waited (" .. ticks .. " ticks in " ..
       ("%.2f"):format(dt) .. " s)")
end

-- A port outside 0..65535 is Python's OverflowError (it was wrapped
-- modulo 65536 and connected elsewhere).
do
  for _, port in ipairs{70000, -1} do
    t.raises(function() asyncio.run(asyncio.open_connection("127.0.0.1", port)) end,
             OverflowError, "open_connection(host, " .. port .. "): OverflowError")
    t.raises(function() asyncio.run(asyncio.start_server(function() end, "127.0.0.1", port)) end,
             OverflowError, "start_server(cb, host, " .. port .. "): OverflowError")
  end
end

t.done_testing()
