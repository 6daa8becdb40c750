#!/usr/bin/env gilua
-- The manager: a client must prove it holds the key before anything of its
-- is decoded; each thread has its own connection, so a blocked call does
-- not hold up another thread's.
require("support.util").tsan_allow_fork()

local t = require "tap"
local mp = require "multiprocessing"
local managers = require "multiprocessing.managers"
local _mp = require "_multiprocessing"
local threading = require "threading"
local time = require "time"

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

-- A message that, decoded, calls os.execute(cmd): a reduced value whose
-- rebuild function is named (module "os", key "execute").
local function crafted(cmd)
  local function str(s) return string.char(5, #s) .. s end
  return string.char(0xC5, 1, 15, 12, 2) .. "os" .. str("execute") .. str(cmd)
end

local manager = mp.Manager()
local dir = os.tmpname()
os.remove(dir)
local marker = dir .. ".ran"

-- a client that does not know the key sends the crafted message first
do
  local conn = _mp.connect(manager.address)
  conn:send_bytes(crafted("touch " .. marker))
  -- the server answers (a challenge, then a failure) and hangs up
  local got = {}
  while true do
    local ok, b = pcall(conn.recv_bytes, conn, 1024)
    if not ok then break end
    got[#got + 1] = b
  end
  conn:close()
  time.sleep(0.3)
  t.ok(not exists(marker), "a message from a client without the key is never decoded (nothing ran)")
  t.ok(#got >= 1 and got[1]:sub(1, 11) == "#CHALLENGE#", "the server speaks first: a challenge")
  t.is(got[#got], "#FAILURE#", "... and refuses the wrong answer")
end

-- the same after a plausible-looking but wrong digest
do
  local conn = _mp.connect(manager.address)
  local challenge = conn:recv_bytes(256)
  conn:send_bytes(_mp.hmac_sha256("wrong key", challenge))
  t.is(conn:recv_bytes(256), "#FAILURE#", "a digest made with a wrong key is refused")
  local ok = pcall(function() conn:send_bytes(crafted("touch " .. marker)); return conn:recv_bytes(256) end)
  t.ok(not ok, "the connection is closed after a failure")
  conn:close()
  time.sleep(0.3)
  t.ok(not exists(marker), "nothing sent after a refused digest ran")
end

-- proxies with a wrong key: AuthenticationError
do
  local d = manager:dict()
  d.x = 1
  local forged = setmetatable({ _addr = manager.address, _key = "not the key",
                                _id = rawget(d, "_id"), _kind = "dict" }, managers.DictProxy)
  local err
  threading.Thread{ target = function()     -- a thread of its own: a new connection
    err = select(2, pcall(function() return forged.x end))
  end }:start()
  time.sleep(0.5)
  t.ok(mp.AuthenticationError:is(err), "a proxy with a wrong key: AuthenticationError (" .. tostring(err) .. ")")
  t.is(d.x, 1, "the right key still works")
end

-- the HMAC is HMAC-SHA256 (RFC 4231, test case 2)
t.is((_mp.hmac_sha256("Jefe", "what do ya want for nothing?"):gsub(".", function(c)
  return ("%02x"):format(c:byte()) end)),
  "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", "HMAC-SHA256 known answer")
t.ok(_mp.compare_digest("abc", "abc") and not _mp.compare_digest("abc", "abd")
     and not _mp.compare_digest("abc", "ab"), "compare_digest")

-- one connection per thread: a get blocked in one thread, a put in another
do
  local q = manager:Queue()
  local got
  local th = threading.Thread{ target = function() got = q:get() end, daemon = true }
  th:start()
  time.sleep(0.3)
  local done = false
  local putter = threading.Thread{ target = function() q:put("item"); done = true end, daemon = true }
  putter:start()
  putter:join(5)
  t.ok(done, "a put from another thread goes through while a get waits (no deadlock)")
  th:join(5)
  t.is(got, "item", "the waiting get receives it")
end

manager:shutdown()
os.remove(marker)
t.done_testing()
