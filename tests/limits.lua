#!/usr/bin/env gilua
-- Extreme numbers where C code once met undefined behaviour (which the
-- sanitizer build, `make asan`, now stops on): clear errors instead.
local t = require "tap"
local mp = require "multiprocessing"

-- send_bytes(s, offset, size): any integers, compared, never added
do
  local a, b = mp.Pipe()
  t.raises(function() a:send_bytes("abc", math.mininteger) end, ValueError,
           "send_bytes: offset math.mininteger is a ValueError")
  t.raises(function() a:send_bytes("abc", math.maxinteger) end, ValueError,
           "send_bytes: offset math.maxinteger is a ValueError")
  t.raises(function() a:send_bytes("abc", 1, math.maxinteger) end, ValueError,
           "send_bytes: size math.maxinteger is a ValueError")
  t.raises(function() a:send_bytes("abc", 0, math.mininteger) end, ValueError,
           "send_bytes: size math.mininteger is a ValueError")
  a:send_bytes("abcdef", 2, 3)
  t.is(b:recv_bytes(), "cde", "send_bytes(s, 2, 3) sends bytes 3 to 5")
  a:send_bytes("abc", 3)
  t.is(b:recv_bytes(), "", "an offset at the end sends nothing")
  a:close(); b:close()
end

-- an empty frame
do
  local a, b = mp.Pipe()
  a:send_bytes("")
  t.is(b:recv_bytes(), "", "an empty message is received as ''")
  a:send_bytes("")
  t.raises(function() b:recv() end, ValueError, "recv() of an empty frame: ValueError")
  a:close(); b:close()
end

-- a semaphore's count at the top of its range (Linux's SEM_VALUE_MAX, as
-- Python's): a release past it is refused, the count does not overflow
do
  local s = mp.Semaphore(2147483647)
  t.raises(function() s:release() end, ValueError,
           "mp.Semaphore(SEM_VALUE_MAX):release(): ValueError")
  t.ok(s:get_value() == 2147483647, "... and the count stays as it was")
end

t.done_testing()
