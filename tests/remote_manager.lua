#!/usr/bin/env gilua
-- Remote managers and multiprocessing.connection over TCP (and Unix
-- sockets): authentication with the right key, a wrong one or none, a
-- client that never answers, 10,000 items through a remote queue, user
-- types registered locally and remotely, serve_forever, errors, a server
-- that is gone, and a manager and its client in two network namespaces.
require("support.util").tsan_allow_fork()

local t = require "tap"
local mp = require "multiprocessing"
local managers = require "multiprocessing.managers"
local connection = require "multiprocessing.connection"
local threading = require "threading"
local queue = require "queue"
local time = require "time"
local Object = require "gilua.class"
local exc = require "gilua.exceptions"

local AuthenticationError = mp.AuthenticationError
local LOOP = "127.0.0.1"

-- A user type, registered below.
local Counter = Object:extend("Counter")
function Counter:init(start) self.n = start or 0 end
function Counter:incr(k) self.n = self.n + (k or 1); return self.n end
function Counter:value() return self.n end
function Counter:_secret() return "hidden" end

-- err is an instance of the exception class named (nil: any error)
local function exc_is(err, name)
  if name == nil then return true end
  return exc[name]:is(err)
end

local function elapsed(fn, ...)
  local t0 = time.monotonic()
  local r = table.pack(pcall(fn, ...))
  return time.monotonic() - t0, table.unpack(r, 1, r.n)
end

-- multiprocessing.connection: Listener and Client --------------------------------

for _, family in ipairs{ "AF_INET", "AF_UNIX" } do
  local l <close> = connection.Listener{ family = family, authkey = "k1" }
  if family == "AF_INET" then
    t.ok(type(l.address) == "table" and l.address[1] == LOOP and l.address[2] > 0,
         "Listener on AF_INET with no address: loopback and a free port (" ..
         connection._address_string(l.address) .. ")")
  else
    t.ok(type(l.address) == "string" and l.address:sub(1, 1) == "/", "Listener on AF_UNIX: a path")
  end
  local th = threading.Thread{ target = function()
    local c <close> = connection.Client(l.address, nil, "k1")
    c:send({ "hello", 1 })
    local r = c:recv()
    c:send(r .. "!")
  end }
  th:start()
  local c <close> = l:accept()
  local v = c:recv()
  t.ok(v[1] == "hello" and v[2] == 1, family .. ": a value from Client to Listener")
  c:send("back")
  t.ok(c:poll(5), family .. ": poll sees the answer")
  t.is(c:recv(), "back!", family .. ": and back")
  th:join()
  if family == "AF_INET" then
    t.is(l.last_accepted and l.last_accepted[1], LOOP, "last_accepted is the peer's address")
  end

  -- a wrong key: refused on both sides
  local cerr
  th = threading.Thread{ target = function()
    cerr = select(2, pcall(connection.Client, l.address, nil, "wrong"))
  end }
  th:start()
  t.raises(function() return l:accept() end, AuthenticationError,
           family .. ": Listener:accept refuses a client with a wrong key")
  th:join()
  t.ok(AuthenticationError:is(cerr), family .. ": the client with a wrong key gets AuthenticationError")

  -- no key at all (a client that does not authenticate): refused
  th = threading.Thread{ target = function()
    local ok, c2 = pcall(connection.Client, l.address)
    if ok then pcall(c2.send, c2, "a request"); pcall(c2.recv_bytes, c2); c2:close() end
  end }
  th:start()
  t.raises(function() return l:accept() end, AuthenticationError,
           family .. ": a client without a key is refused")
  th:join()
end

-- a client that connects and never answers: the Listener gives up
do
  local l <close> = connection.Listener{ address = { LOOP, 0 }, authkey = "k", handshake_timeout = 0.5 }
  local raw = mp.connection._connect(l.address)
  local took, ok, err = elapsed(l.accept, l)
  t.ok(not ok and AuthenticationError:is(err), "a silent client: accept fails with AuthenticationError ("
       .. tostring(err) .. ")")
  t.between(took, 0.3, 5, "... after the handshake timeout, not for ever")
  raw:close()
end

-- a client that stops in the middle of a message: the same (the client
-- is a small Python program, which can write half a frame)
do
  local l <close> = connection.Listener{ address = { LOOP, 0 }, authkey = "k", handshake_timeout = 0.5 }
  local py = io.popen(("python3 -c %s %d"):format(t.shquote(
    "import socket, sys, time\n" ..
    "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n" ..
    "s.recv(256)\n" ..
    "s.sendall(b'\\x28\\x00\\x00\\x00abc')\n" ..      -- 40 bytes announced, 3 sent
    "time.sleep(3)\n"), l.address[2]))
  local took, ok, err = elapsed(l.accept, l)
  t.ok(not ok and AuthenticationError:is(err), "a client that stops half-way through a message: " ..
       "AuthenticationError (" .. tostring(err) .. ")")
  t.between(took, 0.3, 5, "... within the timeout")
  py:close()
end

-- A remote manager over TCP --------------------------------------------------------

local shared_q = queue.Queue()
local shared_d = {}
local QueueManager = managers.BaseManager:extend()
QueueManager.register("get_queue", function() return shared_q end)
QueueManager.register("get_dict", function() return shared_d end, { proxytype = managers.DictProxy })
QueueManager:register("Counter", Counter)     -- the colon form is the same

-- the client's view: typeids only, no callables
local ClientManager = managers.BaseManager:extend()
ClientManager.register("get_queue")
ClientManager.register("get_dict")
ClientManager.register("Counter")

mp.connection.HANDSHAKE_TIMEOUT = 0.5           -- the server inherits it
local server = QueueManager{ address = { LOOP, 0 }, authkey = "abracadabra" }
server:start()
mp.connection.HANDSHAKE_TIMEOUT = 20
local addr = server.address
t.ok(addr[2] > 0, "port 0: manager.address gives the port chosen (" .. addr[2] .. ")")

do
  local c = ClientManager{ address = addr, authkey = "abracadabra" }
  t.is(c:connect(), c, "connect() with the right key")
  local d = c:get_dict()
  d.x = 41
  d.x = d.x + 1
  t.is(d.x, 42, "a registered dict over TCP (DictProxy)")
  local ctr = c:Counter(10)
  ctr:incr(); ctr:incr(5)
  t.is(ctr:value(), 16, "a registered user type over TCP (AutoProxy: its methods)")
  t.is(ctr._secret, nil, "a name starting with _ is no method of the proxy")
  t.raises(function() return ctr:_callmethod("_secret") end, exc.AttributeError,
           "a method starting with _ is not exposed")
  t.raises(function() return ctr:_callmethod("init", 0) end, exc.AttributeError,
           "the class machinery (init) is not exposed")
  t.raises(function() return ctr:_callmethod("extend") end, exc.AttributeError, "... nor extend")
  t.is(ctr:value(), 16, "... and the object is untouched")
  t.raises(function() return ctr:nosuch() end, "has no method 'nosuch'", "an unknown method: AttributeError")
  t.is(c:get_queue():qsize(), 0, "the registered queue is reachable")
  c:shutdown()
end

do
  local took, ok, err = elapsed(function()
    return ClientManager{ address = addr, authkey = "not the key" }:connect()
  end)
  t.ok(not ok and AuthenticationError:is(err), "connect() with a wrong key: AuthenticationError (" .. tostring(err) .. ")")
  ok, err = pcall(function() return ClientManager{ address = addr }:connect() end)
  t.ok(not ok and AuthenticationError:is(err), "connect() with no key (the process's own): AuthenticationError")
  local raw = mp.connection._connect(addr)
  local challenge = raw:recv_bytes(256)
  t.is(challenge:sub(1, 11), "#CHALLENGE#", "the server speaks first: a challenge, before reading anything")
  raw:send({ "create", "get_dict", n = 2 })       -- a request in place of the answer
  t.is(raw:recv_bytes(256), "#FAILURE#", "a request sent without the key is refused, not served")
  raw:close()
  -- a client that connects and says nothing is dropped after the timeout
  raw = mp.connection._connect(addr)
  raw:recv_bytes(256)
  local closed = false
  local t0 = time.monotonic()
  while time.monotonic() - t0 < 8 and raw:poll(8) do   -- a #FAILURE#, then the end
    if not pcall(raw.recv_bytes, raw, 256) then closed = true; break end
  end
  t.ok(closed and time.monotonic() - t0 < 8,
       "the server does not wait for ever on a silent client: it hangs up after the handshake timeout")
  raw:close()
  local d = ClientManager{ address = addr, authkey = "abracadabra" }:connect():get_dict()
  t.is(d.x, 42, "the server still serves others")
end

-- 10,000 items through a remote queue, from two producer processes
do
  local N, P = 10000, 2
  local t0 = time.monotonic()
  local procs = {}
  for p = 1, P do
    procs[p] = mp.Process{ target = function()
      local c = ClientManager{ address = addr, authkey = "abracadabra" }:connect()
      local q = c:get_queue()
      for i = p, N, P do q:put(i) end
    end }
    procs[p]:start()
  end
  local q = ClientManager{ address = addr, authkey = "abracadabra" }:connect():get_queue()
  local seen, dup, bad = {}, 0, 0
  for _ = 1, N do
    local v = q:get(true, 60)
    if math.type(v) ~= "integer" or v < 1 or v > N then bad = bad + 1
    elseif seen[v] then dup = dup + 1
    else seen[v] = true end
  end
  for p = 1, P do procs[p]:join() end
  local took = time.monotonic() - t0
  local missing = 0
  for i = 1, N do if not seen[i] then missing = missing + 1 end end
  t.ok(missing == 0 and dup == 0 and bad == 0,
       ("10,000 items through a remote queue arrive once each (missing %d, twice %d, odd %d)")
       :format(missing, dup, bad))
  t.ok(q:empty(), "and nothing more is left")
  t.ok(procs[1].exitcode == 0 and procs[2].exitcode == 0, "the producers exit with 0")
  t.diag(("10,000 items through a remote TCP queue: %.2f s"):format(took))
end

-- the server that is gone: a clear error, no hang
do
  local c = ClientManager{ address = addr, authkey = "abracadabra" }:connect()
  local d = c:get_dict()
  server:shutdown()
  t.ok(not server._process:is_alive(), "shutdown() stops the server process")
  local took, ok, err = elapsed(function() return d.x end)
  t.ok(not ok and (exc_is(err, "EOFError") or exc_is(err, "ConnectionRefusedError")),
       "a proxy of a server that is gone: an error (" .. tostring(err) .. ")")
  t.like(tostring(err), addr[2] .. "", "... naming the server's address")
  t.ok(took < 5, "... at once")
  took, ok, err = elapsed(function()
    return ClientManager{ address = addr, authkey = "abracadabra" }:connect()
  end)
  t.ok(not ok and exc_is(err, "ConnectionRefusedError"), "connect() to a server that is gone: ConnectionRefusedError")
  t.like(tostring(err), "127%.0%.0%.1:" .. addr[2], "... naming host:port")
  t.ok(took < 5, "... at once")
end

-- a server killed while a client waits on it: the wait ends
do
  local m = QueueManager{ address = { LOOP, 0 }, authkey = "k" }
  m:start()
  local q = ClientManager{ address = m.address, authkey = "k" }:connect():get_queue()
  threading.Timer(0.3, function() m._process:kill() end):start()
  local took, ok, err = elapsed(q.get, q)
  t.ok(not ok and exc_is(err, "EOFError"), "a get() waiting on a server that is killed: EOFError (" ..
       tostring(err) .. ")")
  t.ok(took < 10, "... no hang")
  m._process:join()
  m:shutdown()
end

-- get_server():serve_forever() -------------------------------------------------------

do
  local m = QueueManager{ address = { LOOP, 0 }, authkey = "srv" }
  local srv = m:get_server()
  t.ok(srv.address[2] > 0 and srv.address[2] == m.address[2], "get_server() binds at once: server.address")
  local th = threading.Thread{ target = function() srv:serve_forever() end }
  th:start()
  local c = ClientManager{ address = srv.address, authkey = "srv" }:connect()
  local ctr = c:Counter(1)
  t.is(ctr:incr(2), 3, "serve_forever() in a thread of this process serves a client")
  local q = c:get_queue()
  q:put("via serve_forever")
  t.is(shared_q:get(false), "via serve_forever", "the object served is this process's own")
  srv:shutdown()
  th:join(5)
  t.ok(not th:is_alive(), "server:shutdown() makes serve_forever() return")
  t.raises(function() return ClientManager{ address = srv.address, authkey = "srv" }:connect() end,
           "Connection refused", "and it listens no more")
  t.raises(function() return m:start() end, mp.ProcessError, "start() after get_server(): ProcessError")
  -- the server's client threads end too; and the fork below must not come
  -- while they do (ASan's allocator, of clang 14, is not locked across a
  -- fork: a child forked while another thread allocates may hang in malloc)
  t.ok(require("support.util").wait_until(function() return threading.active_count() == 1 end, 10),
       "after server:shutdown() its client threads end (" .. threading.active_count() .. " threads)")
end

-- serve_forever in another process, over a Unix socket address
do
  local path = t.tmpname(".sock")
  local p = mp.Process{ target = function()
    local m = QueueManager{ address = path, authkey = "u" }
    m:get_server():serve_forever()
  end }
  p:start()
  local c
  for _ = 1, 100 do
    local ok, r = pcall(function() return ClientManager{ address = path, authkey = "u" }:connect() end)
    if ok then c = r; break end
    time.sleep(0.05)
  end
  t.ok(c ~= nil, "a manager on a Unix socket path, served by serve_forever() in another process")
  if c then
    local d = c:get_dict()
    d.k = "v"
    t.is(d.k, "v", "... serves")
  end
  p:terminate(); p:join()
  os.remove(path)
end

-- register on local managers -------------------------------------------------------

do
  local Local = managers.SyncManager:extend()
  Local.register("Counter", Counter)
  local m <close> = Local()
  m:start()
  local ctr = m:Counter(5)
  local p = mp.Process{ target = function() ctr:incr(10) end }
  p:start(); p:join()
  t.is(ctr:value(), 15, "register on a SyncManager subclass: a local manager serves the user type to a child")
  t.is(m:dict({ a = 1 }).a, 1, "... and keeps SyncManager's types")
  t.is(managers.SyncManager.Counter, nil, "the subclass's registry is its own (SyncManager has no Counter)")
  mp.Manager.register("Counter2", Counter)
  local m2 <close> = mp.Manager()
  t.is(m2:Counter2(7):value(), 7, "Manager.register(...): mp.Manager() gets the type")
end

-- a server started by spawn: a fresh gilua gets the registry (user callables
-- included) and serves over TCP
do
  local r = t.run([[
local mp = require "multiprocessing"
local managers = require "multiprocessing.managers"
local Counter = require("gilua.class"):extend("SpawnCounter")
function Counter:init(n) self.n = n end
function Counter:incr() self.n = self.n + 1; return self.n end
local M = managers.SyncManager:extend()
M.register("Counter", Counter)
if __name__ == "__main__" then
  local m <close> = M{address = {"127.0.0.1", 0}, authkey = "sp", ctx = mp.get_context("spawn")}
  m:start()
  local c = m:Counter(41)
  local l = m:list({1, 2})
  l:append(3)
  print("spawned " .. c:incr() .. " " .. #l .. " " .. tostring(m.address[2] > 0))
end
]])
  t.is(r.stdout, "spawned 42 3 true\n", "a spawned server serves a registered type and SyncManager's (" ..
       r.stderr:sub(1, 200) .. ")")
end

-- errors: bad arguments name the function and the argument --------------------------

local function fails(fn, cls, pats, name)
  local ok, err = pcall(fn)
  local pass = not ok and exc_is(err, cls)
  for _, p in ipairs(pats) do pass = pass and tostring(err):find(p) ~= nil end
  t.ok(pass, name .. " (" .. tostring(err) .. ")")
end

fails(function() return managers.BaseManager{ address = 5 } end, "TypeError", { "BaseManager", "'address'" },
      "BaseManager{address = 5}")
fails(function() return managers.BaseManager{ address = { LOOP, "x" } } end, "TypeError", { "BaseManager", "port" },
      "BaseManager{address = {host, 'x'}}")
fails(function() return managers.BaseManager{ address = { LOOP, 70000 } } end, "OverflowError", { "BaseManager", "port" },
      "BaseManager{address = {host, 70000}}")
fails(function() return managers.BaseManager{ address = { 5, 1 } } end, "TypeError", { "BaseManager", "host" },
      "BaseManager{address = {5, 1}}")
fails(function() return managers.BaseManager{ authkey = 5 } end, "TypeError", { "BaseManager", "'authkey'" },
      "BaseManager{authkey = 5}")
fails(function() return managers.BaseManager{ bogus = 1 } end, "TypeError", { "BaseManager", "bogus" },
      "BaseManager{bogus = 1}")
fails(function() return managers.BaseManager():connect() end, "ValueError", { "connect", "no address" },
      "connect() without an address")
fails(function() return managers.BaseManager{ address = { LOOP, 1 } }:Counter() end, nil, { "Counter" },
      "a typeid not registered on the class is no method")
fails(function() managers.BaseManager:extend().register(5) end, "TypeError", { "register", "'typeid'" },
      "register(5)")
fails(function() managers.BaseManager:extend().register("x", 5) end, "TypeError", { "register", "'callable'" },
      "register('x', 5)")
fails(function() managers.BaseManager:extend().register("x", nil, { proxytype = {} }) end, "TypeError",
      { "register", "'proxytype'" }, "register('x', nil, {proxytype = {}})")
fails(function() managers.BaseManager:extend().register("x", nil, { exposed = { 1 } }) end, "TypeError",
      { "register", "'exposed'" }, "register('x', nil, {exposed = {1}})")
fails(function() return managers.BaseManager{ address = { LOOP, 1 } }:start(5) end, "TypeError",
      { "start", "'initializer'" }, "start(5)")
fails(function() return connection.Listener(5) end, "TypeError", { "Listener", "'address'" }, "Listener(5)")
fails(function() return connection.Listener({ LOOP, 0 }, "AF_UNIX") end, "ValueError", { "Listener", "AF_UNIX" },
      "Listener({host, port}, 'AF_UNIX')")
fails(function() return connection.Listener({ LOOP, 0 }, "AF_BOGUS") end, "ValueError", { "Listener", "family" },
      "Listener(address, 'AF_BOGUS')")
fails(function() return connection.Listener{ address = { LOOP, 0 }, backlog = -1 } end, "ValueError",
      { "Listener", "'backlog'" }, "Listener{backlog = -1}")
fails(function() return connection.Listener{ address = { LOOP, 0 }, authkey = {} } end, "TypeError",
      { "Listener", "'authkey'" }, "Listener{authkey = {}}")
fails(function() return connection.Client({ LOOP }) end, "TypeError", { "Client", "port" }, "Client({host})")
fails(function() return connection.Client({ "no-such-host.invalid", 1 }) end, "OSError",
      { "no%-such%-host%.invalid" }, "Client to a host that does not resolve: OSError naming it")

-- two network namespaces over a virtual link ------------------------------------------

local function sh(cmd)
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  return ok == true or ok == 0
end

do
  local tag = tostring(os.getpid())
  local ns1, ns2 = "glsrv" .. tag, "glcli" .. tag
  local v1, v2 = "gla" .. tag, "glb" .. tag
  local why
  if not sh("command -v ip") then why = "the ip command is missing"
  elseif not sh("ip netns add " .. ns1) then why = "ip netns add failed (needs root or CAP_SYS_ADMIN)"
  elseif not sh("ip netns add " .. ns2) then why = "ip netns add failed for a second namespace"
  elseif not sh(("ip link add %s type veth peer name %s"):format(v1, v2)) then why = "no veth link (ip link add)"
  end
  if why then
    t.ok(true, "manager and client in two network namespaces # SKIP " .. why)
  else
    local setup = sh(table.concat({
      ("ip link set %s netns %s"):format(v1, ns1),
      ("ip link set %s netns %s"):format(v2, ns2),
      ("ip -n %s addr add 10.231.7.1/24 dev %s"):format(ns1, v1),
      ("ip -n %s addr add 10.231.7.2/24 dev %s"):format(ns2, v2),
      ("ip -n %s link set %s up"):format(ns1, v1), ("ip -n %s link set %s up"):format(ns2, v2),
      ("ip -n %s link set lo up"):format(ns1), ("ip -n %s link set lo up"):format(ns2),
    }, " && "))
    t.ok(setup, "two namespaces joined by a veth link (10.231.7.1 <-> 10.231.7.2)")
    local srv_script, cli_script, out = t.tmpname(".lua"), t.tmpname(".lua"), t.tmpname()
    local f = assert(io.open(srv_script, "w"))
    f:write([[
local managers = require "multiprocessing.managers"
local queue = require "queue"
local q, d = queue.Queue(), {}
local M = managers.BaseManager:extend()
M.register("get_queue", function() return q end)
M.register("get_dict", function() return d end, {proxytype = managers.DictProxy})
M{address = {"10.231.7.1", 50123}, authkey = "netns"}:get_server():serve_forever()
]])
    f:close()
    f = assert(io.open(cli_script, "w"))
    f:write([[
local managers = require "multiprocessing.managers"
local time = require "time"
local M = managers.BaseManager:extend()
M.register("get_queue"); M.register("get_dict")
local m
for _ = 1, 200 do
  local ok, r = pcall(function() return M{address = {"10.231.7.1", 50123}, authkey = "netns"}:connect() end)
  if ok then m = r break end
  time.sleep(0.05)
end
local q, d = m:get_queue(), m:get_dict()
for i = 1, 100 do q:put(i) end
local s = 0
for _ = 1, 100 do s = s + q:get() end
d.from = "client"
print("sum " .. s .. " " .. d.from)
local ok, err = pcall(function() return M{address = {"10.231.7.1", 50123}, authkey = "bad"}:connect() end)
print("wrong key " .. tostring(err))
]])
    f:close()
    local g = t.shquote(t.gilua())
    local pipe = io.popen(table.concat({
      ("ip netns exec %s %s %s & SP=$!"):format(ns1, g, t.shquote(srv_script)),
      ("timeout 60 ip netns exec %s %s %s > %s 2>&1"):format(ns2, g, t.shquote(cli_script), t.shquote(out)),
      "echo client=$?", "kill $SP", "wait $SP 2>/dev/null",
      -- from the host's own namespace, the server's address is not reachable
      ("timeout 10 %s -e 'print(pcall(require(\"multiprocessing.connection\")._connect, {\"10.231.7.1\", 50123}))'"):format(g),
    }, "; "))
    local status = pipe:read("a")
    pipe:close()
    local got = t.slurp(out) or ""
    t.like(status, "client=0", "the client in the other namespace exits with 0")
    t.like(got, "sum 5050 client\n", "over the veth link: 100 items through the queue and back, a dict written")
    t.like(got, "wrong key multiprocessing.AuthenticationError", "... and a wrong key is refused there too")
    t.like(status, "false", "the server's address is not reachable from outside the namespaces")
    os.remove(srv_script); os.remove(cli_script); os.remove(out)
  end
  sh("ip netns del " .. ns1)
  sh("ip netns del " .. ns2)
  sh("ip link del " .. v1)
end

t.done_testing()
