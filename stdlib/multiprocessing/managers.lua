--[[
multiprocessing.managers: a manager is a server process that holds shared
objects; proxies in any process send their reads and writes to it.

    local mp = require "multiprocessing"
    local manager <close> = mp.Manager()      -- shutdown at the end of the scope
    local d, l = manager:dict(), manager:list()
    d.k = true; d["other key"] = 1; l:append(42)
    print(d, l)                               -- {'k': True, ...} [42]

Remote managers (Python's BaseManager), over TCP:

    local QM = managers.BaseManager:extend()
    QM.register("get_queue", function() return q end)    -- server side
    QM{address = {"0.0.0.0", 50000}, authkey = key}:get_server():serve_forever()
    -- elsewhere: QM.register("get_queue"), then
    local m = QM{address = {"server", 50000}, authkey = key}:connect()
    m:get_queue():put(1)

Without an address the server listens on a Unix socket in a directory
only the user can enter, the socket itself mode 0600. On any address a
client must first prove that it holds the key (challenge and HMAC-SHA256
answer, both ways, on raw bytes: nothing from a client is decoded
before; multiprocessing.connection), within the handshake timeout. The
channel is not encrypted. Each thread of a client has its own connection,
and one server thread serves each connection, so a blocking call (a
Queue get, a Lock acquire) only blocks its caller. Objects live until the
manager shuts down. A server whose parent died without shutting it down
(killed) stops soon after (it looks every second).

Proxies: dict (d[k], d[k] = v, d:get, d:keys, d:values, d:items, d:pop,
d:update, d:copy, #d, method names win over keys of the same name: read
those with d:get(k)), list (l[i] 1-based, l:append, l:extend, l:insert,
l:pop, l:remove, l:index, l:count, l:copy, #l), Namespace (fields), Queue,
JoinableQueue, Lock, RLock, Semaphore, BoundedSemaphore, Event, Value
(.value), AutoProxy (a registered type's public methods). print(proxy)
shows the contents the Python way.
]]

local mp = require "multiprocessing"
local util = require "multiprocessing._util"
local _mp = require "_multiprocessing"
local Object = require "gilua.class"
local exc = require "gilua.exceptions"
local args = require "gilua.args"
local threading = require "threading"
local queue = require "queue"
require "multiprocessing.connection"   -- Listener, Client, addresses: in mp.connection

local type, next, pcall, tostring, error, select, setmetatable, getmetatable, rawget =
  type, next, pcall, tostring, error, select, setmetatable, getmetatable, rawget
local unpack, pack = table.unpack, table.pack

local M = {}

-- Python's repr, for print(proxy) ------------------------------------------

local function repr(v, seen)
  local t = type(v)
  if v == nil then return "None" end
  if t == "boolean" then return v and "True" or "False" end
  if t == "string" then return "'" .. v:gsub("\\", "\\\\"):gsub("'", "\\'") .. "'" end
  if t == "number" then
    if math.type(v) == "float" and v == math.floor(v) and v == v and v ~= math.huge and v ~= -math.huge then
      return ("%.1f"):format(v)
    end
    return tostring(v)
  end
  if t ~= "table" or getmetatable(v) ~= nil then return tostring(v) end
  seen = seen or {}
  if seen[v] then return "{...}" end
  seen[v] = true
  local out, n = {}, #v
  local list = n > 0
  for k in next, v do
    if math.type(k) ~= "integer" or k < 1 or k > n then list = false; break end
  end
  if list or next(v) == nil and getmetatable(v) == nil and rawget(v, "__list") then
    for i = 1, n do out[i] = repr(v[i], seen) end
    seen[v] = nil
    return "[" .. table.concat(out, ", ") .. "]"
  end
  local keys = {}
  for k in next, v do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
    return type(a) < type(b)
  end)
  for i, k in next, keys do out[i] = repr(k, seen) .. ": " .. repr(v[k], seen) end
  seen[v] = nil
  return "{" .. table.concat(out, ", ") .. "}"
end
M._repr = repr

-- The server --------------------------------------------------------------------

local function list_repr(t)
  local out = {}
  for i = 1, t.n do out[i] = repr(t[i]) end
  return "[" .. table.concat(out, ", ") .. "]"
end

-- The objects the server makes: each kind maps method names to functions
-- of (object, ...).
local KINDS = {}

KINDS.dict = {
  new = function(init)
    local d = {}
    if type(init) == "table" then for k, v in next, init do d[k] = v end end
    return d
  end,
  getitem = function(d, k)
    local v = d[k]
    if v == nil then error(exc.KeyError(repr(k))) end
    return v
  end,
  setitem = function(d, k, v) d[k] = v end,
  delitem = function(d, k)
    if d[k] == nil then error(exc.KeyError(repr(k))) end
    d[k] = nil
  end,
  get = function(d, k, default)
    local v = d[k]
    if v == nil then return default end
    return v
  end,
  len = function(d) local n = 0 for _ in next, d do n = n + 1 end return n end,
  keys = function(d) local r = {} for k in next, d do r[#r + 1] = k end return r end,
  values = function(d) local r = {} for _, v in next, d do r[#r + 1] = v end return r end,
  items = function(d) local r = {} for k, v in next, d do r[#r + 1] = { k, v } end return r end,
  copy = function(d) local r = {} for k, v in next, d do r[k] = v end return r end,
  update = function(d, t) for k, v in next, t do d[k] = v end end,
  pop = function(d, k, ...)
    local v = d[k]
    if v == nil then
      if select("#", ...) > 0 then return (...) end
      error(exc.KeyError(repr(k)))
    end
    d[k] = nil
    return v
  end,
  clear = function(d) for k in next, d do d[k] = nil end end,
  contains = function(d, k) return d[k] ~= nil end,
  repr = function(d) return repr(d) end,
}

KINDS.list = {
  new = function(init)
    local l = { n = 0 }
    if type(init) == "table" then
      for i = 1, init.n or #init do l[i] = init[i] end
      l.n = init.n or #init
    end
    return l
  end,
  getitem = function(l, i)
    if math.type(i) ~= "integer" or i < 1 or i > l.n then error(exc.IndexError("list index out of range")) end
    return l[i]
  end,
  setitem = function(l, i, v)
    if math.type(i) ~= "integer" or i < 1 or i > l.n then error(exc.IndexError("list assignment index out of range")) end
    l[i] = v
  end,
  len = function(l) return l.n end,
  append = function(l, v) l.n = l.n + 1; l[l.n] = v end,
  extend = function(l, t) for i = 1, t.n or #t do l.n = l.n + 1; l[l.n] = t[i] end end,
  insert = function(l, i, v)
    if i < 1 then i = 1 elseif i > l.n + 1 then i = l.n + 1 end
    table.move(l, i, l.n, i + 1)
    l[i] = v
    l.n = l.n + 1
  end,
  pop = function(l, i)
    if l.n == 0 then error(exc.IndexError("pop from empty list")) end
    i = i or l.n
    if i < 1 or i > l.n then error(exc.IndexError("pop index out of range")) end
    local v = l[i]
    table.move(l, i + 1, l.n, i)
    l[l.n] = nil
    l.n = l.n - 1
    return v
  end,
  index = function(l, v)
    for i = 1, l.n do if l[i] == v then return i end end
    error(exc.ValueError(repr(v) .. " is not in list"))
  end,
  remove = function(l, v)
    for i = 1, l.n do
      if l[i] == v then KINDS.list.pop(l, i); return end
    end
    error(exc.ValueError("list.remove(x): x not in list"))
  end,
  count = function(l, v) local c = 0 for i = 1, l.n do if l[i] == v then c = c + 1 end end return c end,
  copy = function(l) return table.move(l, 1, l.n, 1, {}) end,
  sort = function(l, cmp)
    local t = table.move(l, 1, l.n, 1, {})
    table.sort(t, cmp)
    table.move(t, 1, l.n, 1, l)
  end,
  repr = function(l) return list_repr(l) end,
}

KINDS.namespace = {
  new = function(init)
    local ns = {}
    if type(init) == "table" then for k, v in next, init do ns[k] = v end end
    return ns
  end,
  getattr = function(ns, k)
    local v = ns[k]
    if v == nil then error(exc.AttributeError("'Namespace' object has no attribute '" .. tostring(k) .. "'")) end
    return v
  end,
  setattr = function(ns, k, v) ns[k] = v end,
  delattr = function(ns, k) ns[k] = nil end,
  repr = function(ns)
    local keys, out = {}, {}
    for k in next, ns do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    for i, k in next, keys do out[i] = k .. "=" .. repr(ns[k]) end
    return "Namespace(" .. table.concat(out, ", ") .. ")"
  end,
}

KINDS.value = {
  new = function(typecode, v) return { typecode = typecode, value = v } end,
  get = function(o) return o.value end,
  set = function(o, v) o.value = v end,
  repr = function(o) return ("Value('%s', %s)"):format(o.typecode, repr(o.value)) end,
}

-- The objects of SyncManager's types, made by the server.
local MAKERS = {
  dict = KINDS.dict.new, list = KINDS.list.new,
  Namespace = KINDS.namespace.new, Value = KINDS.value.new,
  Queue = function(maxsize) return queue.Queue(maxsize or 0) end,
  Lock = function() return threading.Lock() end,
  RLock = function() return threading.RLock() end,
  Semaphore = function(v) return threading.Semaphore(v or 1) end,
  BoundedSemaphore = function(v) return threading.BoundedSemaphore(v or 1) end,
  Event = function() return threading.Event() end,
  Condition = function() return threading.Condition() end,
}
MAKERS.JoinableQueue = MAKERS.Queue

local function traced(e)
  if type(e) == "table" and exc.BaseException:is(e) then local _ = e.traceback; return e end
  return tostring(e)
end

-- A method a client may call on an object served by its own methods: not
-- starting with "_", and not a name of the class machinery (init, extend,
-- is, ...: a client does not remake the server's objects).
local function is_public(name)
  return type(name) == "string" and name:sub(1, 1) ~= "_" and Object[name] == nil
end

--[[ The server: the registry's types made on request, held by id, and
their methods called. One thread serves each client connection; nothing a
client sends is decoded before it has proved it holds the key, and a
client that does not prove it within the handshake timeout is dropped. ]]
local Server = Object:extend("multiprocessing.managers.Server")
M.Server = Server

-- Server(registry, fd, address, authkey, [ppid], [dir]): serves on the
-- listening socket fd bound to address. With ppid it stops when that
-- process is gone; dir is the private directory of a Unix socket.
function Server:init(registry, fd, address, authkey, ppid, dir)
  self.registry = registry
  self.address = address
  self._fd, self._key, self._ppid, self._dir = fd, authkey, ppid, dir
  self._objects, self._ids, self._next = {}, {}, 0
  self._conns = setmetatable({}, { __mode = "k" })
  self._timeout = mp.connection.HANDSHAKE_TIMEOUT
  -- the wake-up pipe is written by shutdown() in a client's thread while
  -- serve_forever may be closing it: one at a time
  self._wake_lock = threading.Lock()
end

local function new_id(self, typeid, entry, obj)
  local same = self._ids[typeid]
  if same == nil then same = {}; self._ids[typeid] = same end
  local t = type(obj)
  local id = (t == "table" or t == "userdata") and same[obj]
  if id then return id end
  self._next = self._next + 1
  id = self._next
  self._objects[id] = { typeid = typeid, kind = entry.kind, obj = obj, exposed = entry.exposed }
  if t == "table" or t == "userdata" then same[obj] = id end
  return id
end

local function create_object(self, typeid, ...)
  local entry = self.registry[typeid]
  if entry == nil then
    error(exc.KeyError(("no type %s registered with the manager"):format(repr(typeid))))
  end
  local make = entry.callable or MAKERS[entry.maker]
  if make == nil then
    error(exc.TypeError(("type %s was registered without a callable on the server")
                        :format(repr(typeid))))
  end
  local obj = make(...)
  if obj == nil then
    error(exc.TypeError(("the callable of %s returned nil: nothing to share"):format(repr(typeid))))
  end
  return new_id(self, typeid, entry, obj), entry.proxyname
end

local function call_object(self, id, name, ...)
  local entry = self._objects[id]
  if entry == nil then error(exc.KeyError(("no shared object with id %s"):format(tostring(id)))) end
  local kind, o = KINDS[entry.kind], entry.obj
  if name == "repr" then return kind and kind.repr(o) or tostring(o) end
  if kind then
    local fn = kind[name]
    if fn == nil or name == "new" then
      error(exc.AttributeError(("'%s' proxy has no method '%s'"):format(entry.typeid, tostring(name))))
    end
    return fn(o, ...)
  end
  -- an object with methods of its own: the public ones, or those exposed
  local exposed = entry.exposed
  if not is_public(name) or (exposed and not exposed[name]) then
    error(exc.AttributeError(("method '%s' of %s is not exposed"):format(tostring(name), entry.typeid)))
  end
  local m = o[name]
  if m == nil or not args.callable(m) then
    error(exc.AttributeError(("'%s' object has no method '%s'"):format(entry.typeid, name)))
  end
  return m(o, ...)
end

-- The reply to a call: a result that is the object itself comes back as
-- the caller's proxy (lock:acquire() returns the lock).
local function reply_of(r, o)
  if r[1] then
    for i = 2, r.n do
      if r[i] == o and o ~= nil then
        r[i] = nil
        r.self = r.self or {}
        r.self[#r.self + 1] = i
      end
    end
  end
  return r
end

function Server:_serve_client(conn)
  self._conns[conn] = true
  -- nothing from a client is decoded before it has proved it has the key
  local ok = pcall(mp.connection._authenticate, conn, self._key, self._timeout, true)
  while ok and not self._stop do
    local got, req = pcall(conn.recv, conn)
    if not got or type(req) ~= "table" then break end
    local op, reply = req[1], nil
    if op == "create" then
      reply = pack(xpcall(create_object, traced, self, unpack(req, 2, req.n)))
    elseif op == "call" then
      local entry = self._objects[req[2]]
      reply = reply_of(pack(xpcall(call_object, traced, self, unpack(req, 2, req.n))),
                       entry and entry.obj)
    elseif op == "ping" then
      reply = { true, n = 1 }
    elseif op == "shutdown" then
      pcall(conn.send, conn, { true, n = 1 })
      self:shutdown()
      break
    else
      reply = { false, exc.ValueError("unknown request " .. repr(op)), n = 2 }
    end
    local sent, err = pcall(conn.send, conn, reply)
    if not sent then
      pcall(conn.send, conn, { false, "result could not be sent: " .. tostring(err), n = 2 })
    end
  end
  self._conns[conn] = nil
  conn:close()
end

-- serve_forever(): accepts clients until shutdown() (from a client, or
-- another thread of this process) or Ctrl-C, then returns.
function Server:serve_forever()
  if self._fd == nil then error(exc.RuntimeError("the server has shut down"), 2) end
  local r, w = _mp.Pipe(false)
  self._wake = w
  local ok, err = pcall(function()
    while not self._stop do
      local ready = _mp.wait({ self._fd, r:fileno() }, self._ppid and 1 or nil)
      -- a parent that died without shutting us down (killed): stop too
      if self._ppid and os.getppid() ~= self._ppid then break end
      for i = 1, #ready do
        if ready[i] == self._fd and not self._stop then
          local got, conn = pcall(_mp.accept, self._fd)
          if got then
            threading.Thread{ daemon = true, name = "manager-client",
              target = self._serve_client, args = { self, conn } }:start()
          end
        end
      end
    end
  end)
  self._stop = true
  self._wake_lock:acquire()
  self._wake = nil
  self._wake_lock:release()
  r:close(); w:close()
  _mp.close(self._fd)
  self._fd = nil
  if type(self.address) == "string" then _mp.remove(self.address) end
  if self._dir then _mp.remove(self._dir) end
  -- clients blocked reading their connection see its end
  for conn in next, self._conns do pcall(conn._shutdown, conn) end
  if not ok and not exc.KeyboardInterrupt:is(err) then error(err, 0) end
end

-- shutdown(): serve_forever returns (a client's shutdown request, or
-- another thread of the server's process).
function Server:shutdown()
  self._stop = true
  self._wake_lock:acquire()
  if self._wake then pcall(self._wake.send_bytes, self._wake, "x") end
  self._wake_lock:release()
end

-- The server of a manager's start(): in a child process, forked or spawned.
local function run_server(fd, address, registry, key, ppid, dir, initializer, initargs)
  if initializer ~= nil then args.apply(initializer, initargs or {}) end
  Server(registry, fd, address, key, ppid, dir):serve_forever()
end

-- A spawned server finds its target by name, the socket as an inherited
-- descriptor.
M._run_server = run_server

-- The client side ---------------------------------------------------------------

-- One connection to each manager per thread (Python's rule), so that a
-- thread blocked in a call (q:get()) does not hold up the others; a
-- thread's connections close when it ends and its local data is dropped.
local tls = threading["local"]()

-- Connections are told apart by address and key: a manager object with
-- another key gets a connection of its own (and is refused on it).
local function addr_key(addr, key)
  if type(addr) == "table" then addr = "tcp:" .. addr[1] .. ":" .. addr[2] end
  return addr .. "\0" .. key
end

local function where(addr)
  return mp.connection._address_string(addr)
end

local function connection(addr, key)
  local by_addr = tls.by_addr
  local pid = os.getpid()
  if by_addr == nil or by_addr.pid ~= pid then   -- none yet, or a fork's copy
    by_addr = { pid = pid }
    tls.by_addr = by_addr
  end
  local k = addr_key(addr, key)
  local conn = by_addr[k]
  if conn then return conn end
  conn = mp.connection._connect(addr)
  local ok, err = pcall(mp.connection._authenticate, conn, key,
                        mp.connection.HANDSHAKE_TIMEOUT, false)
  if not ok then
    if exc.KeyboardInterrupt:is(err) then error(err, 0) end
    error(mp.AuthenticationError(("authentication with the manager at %s failed: %s")
                                 :format(where(addr), mp.AuthenticationError:is(err)
                                         and err.message or tostring(err))), 0)
  end
  by_addr[k] = conn
  return conn
end

local function forget(addr, key)
  local by_addr = tls.by_addr
  local k = addr_key(addr, key)
  local conn = by_addr and by_addr[k]
  if conn then pcall(conn.close, conn); by_addr[k] = nil end
end

local function request(addr, key, req)
  local conn = connection(addr, key)
  local ok, r = pcall(function()
    conn:send(req)
    return conn:recv()
  end)
  if not ok then
    -- Cut short (Ctrl-C) or broken: the server may still answer this call,
    -- so the connection is out of step; the next request makes a new one.
    forget(addr, key)
    if exc.EOFError:is(r) then
      error(exc.EOFError(("the manager at %s closed the connection (has it stopped?)")
                         :format(where(addr))), 0)
    end
    error(r, 0)
  end
  if not r[1] then error(r[2], 0) end
  return r
end

-- Proxies: plain tables (_addr, _key, _id, _kind) with a class, so that
-- they travel to other processes and through the manager itself.
local BaseProxy = Object:extend("multiprocessing.managers.BaseProxy")
M.BaseProxy = BaseProxy

local function call(self, name, ...)
  local r = request(rawget(self, "_addr"), rawget(self, "_key"),
                    pack("call", rawget(self, "_id"), name, ...))
  if r.self then for _, i in next, r.self do r[i] = self end end
  return unpack(r, 2, r.n)
end
M._call = call

-- proxy:_callmethod(name, ...): the referent's method name, called in the
-- server (Python's), for proxy classes of one's own.
BaseProxy._callmethod = call

local function proxy_tostring(self) return call(self, "repr") end
BaseProxy.__tostring = proxy_tostring

local function make_proxy_class(name, methods, index, newindex, len)
  local cls = BaseProxy:extend("multiprocessing.managers." .. name)
  for _, m in next, methods do
    cls[m] = function(self, ...) return call(self, m, ...) end
  end
  cls._exposed = methods
  cls.__tostring = proxy_tostring
  if index then
    cls.__index = function(self, k)
      local v = cls[k]
      if v ~= nil then return v end
      if type(k) == "string" and k:sub(1, 1) == "_" then return nil end
      return index(self, k)
    end
  end
  if newindex then cls.__newindex = newindex end
  if len then cls.__len = len end
  M[name] = cls
  return cls
end

local DictProxy = make_proxy_class("DictProxy",
  { "get", "keys", "values", "items", "copy", "update", "pop", "clear" },
  function(self, k)
    local ok, v = pcall(call, self, "get", k)
    if not ok then error(v, 2) end
    return v
  end,
  function(self, k, v)
    if v == nil then call(self, "delitem", k) else call(self, "setitem", k, v) end
  end,
  function(self) return call(self, "len") end)

local ListProxy = make_proxy_class("ListProxy",
  { "append", "extend", "insert", "pop", "remove", "index", "count", "copy", "sort" },
  function(self, k) return call(self, "getitem", k) end,
  function(self, k, v) call(self, "setitem", k, v) end,
  function(self) return call(self, "len") end)

local NamespaceProxy = make_proxy_class("NamespaceProxy", {},
  function(self, k) return call(self, "getattr", k) end,
  function(self, k, v)
    if v == nil then call(self, "delattr", k) else call(self, "setattr", k, v) end
  end)

local ValueProxy = make_proxy_class("ValueProxy", { "get", "set" },
  function(self, k)
    if k == "value" then return call(self, "get") end
    return nil
  end,
  function(self, k, v)
    if k == "value" then return call(self, "set", v) end
    error(exc.AttributeError("cannot set '" .. tostring(k) .. "' on a ValueProxy"), 2)
  end)

local QueueProxy = make_proxy_class("QueueProxy",
  { "put", "get", "put_nowait", "get_nowait", "qsize", "empty", "full", "task_done", "join" })

local AcquirerProxy = make_proxy_class("AcquirerProxy",
  { "acquire", "release", "locked", "set", "clear", "is_set", "wait", "notify", "notify_all" })
function AcquirerProxy:acquire(...)
  if call(self, "acquire", ...) then return self end
  return false
end
function AcquirerProxy:__close() call(self, "release") end

-- AutoProxy: any public method of the referent (or those exposed),
-- called as proxy:name(...). Python's default proxy type.
local AutoProxy = BaseProxy:extend("multiprocessing.managers.AutoProxy")
M.AutoProxy = AutoProxy
local auto_methods = {}
AutoProxy.__index = function(self, k)
  local v = getmetatable(self)[k]
  if v ~= nil or not is_public(k) then return v end
  v = auto_methods[k]
  if v == nil then
    v = function(proxy, ...) return call(proxy, k, ...) end
    auto_methods[k] = v
  end
  return v
end

-- How the server serves a proxy type's referent: dict, list, namespace
-- and value through KINDS, any other by the referent's own methods.
local PROXY_KINDS = { [DictProxy] = "dict", [ListProxy] = "list",
                      [NamespaceProxy] = "namespace", [ValueProxy] = "value" }

-- The manager ----------------------------------------------------------------------

local ProcessError = mp.ProcessError

local BaseManager = Object:extend("multiprocessing.managers.BaseManager")
M.BaseManager = BaseManager
BaseManager._registry = {}

local REGISTER_ARGS = { "typeid", "callable", "proxytype", "exposed", "create_method",
                        fname = "register" }

local function exposed_set(list, fname)
  if list == nil then return nil end
  args.check(list, "table", fname, "exposed")
  local set = {}
  for i = 1, #list do
    if type(list[i]) ~= "string" then
      error(exc.TypeError(("%s(): argument 'exposed' must be an array of method names, not %s at [%d]")
                          :format(fname, args.typename(list[i]), i)), 4)
    end
    set[list[i]] = true
  end
  return set
end

local function create(self, typeid, ...)
  local state = self._state
  if state ~= "started" and state ~= "connected" then
    error(ProcessError(state == "shutdown" and "manager has shut down"
                       or "manager is not started: call start() or connect() first"), 3)
  end
  local r = request(self.address, self._key, pack("create", typeid, ...))
  local entry = self._registry[typeid]
  local cls = entry and entry.proxytype or M[r[3]] or AutoProxy
  if not Object.is_subclass(cls, BaseProxy) then cls = AutoProxy end
  return setmetatable({ _addr = self.address, _key = self._key, _id = r[2], _kind = typeid }, cls)
end

--[[ register(typeid, [callable], [proxytype], [exposed], [create_method]),
or the same as options, last or alone: Manager classes' register, Python's
classmethod, called on the class (`QueueManager.register("get_queue",
function() return q end)`; `QueueManager:register(...)` is the same).
callable makes the object in the server (a client that only connects
registers the typeid alone); proxytype is the proxy class (AutoProxy by
default: the referent's public methods; DictProxy, ListProxy,
NamespaceProxy, ValueProxy for plain tables); exposed the method names a
client may call; create_method = false adds no method of that name. ]]
local function register(cls, ...)
  local n = select("#", ...)
  local last = n > 0 and select(n, ...) or nil
  local typeid, callable, proxytype, exposed, create_method
  if n >= 2 and args.is_options(last) and last[1] == nil then   -- options last
    if n > 3 then
      error(exc.TypeError(("register() takes at most 2 arguments before its options (%d given)")
                          :format(n - 1)), 3)
    end
    local o_typeid, o_callable
    o_typeid, o_callable, proxytype, exposed, create_method = args.get(REGISTER_ARGS, last)
    typeid = o_typeid or (...)
    callable = o_callable or (n == 3 and select(2, ...) or nil)
  else
    typeid, callable, proxytype, exposed, create_method = args.get(REGISTER_ARGS, ...)
  end
  if type(typeid) ~= "string" or typeid == "" or typeid:sub(1, 1) == "_" then
    error(exc.TypeError(("register(): argument 'typeid' must be a name (a string, not starting with '_'), not %s")
                        :format(type(typeid) == "string" and repr(typeid) or args.typename(typeid))), 3)
  end
  if callable ~= nil then args.check(callable, "callable", "register", "callable") end
  if proxytype ~= nil and not (type(proxytype) == "table" and Object.is_subclass(proxytype, BaseProxy)) then
    error(exc.TypeError(("register(): argument 'proxytype' must be a proxy class " ..
                         "(BaseProxy or a subclass), not %s"):format(args.typename(proxytype))), 3)
  end
  local set = exposed_set(exposed or (proxytype and rawget(proxytype, "_exposed")), "register")
  local registry = rawget(cls, "_registry")
  if registry == nil then          -- a class's first: its own copy (Python's)
    registry = {}
    for k, v in next, cls._registry do registry[k] = v end
    cls._registry = registry
  end
  local pname = proxytype and rawget(proxytype, "__name")
  registry[typeid] = {
    callable = callable, proxytype = proxytype, exposed = set,
    kind = PROXY_KINDS[proxytype] or "method",
    proxyname = pname and pname:match("([^.]+)$") or "AutoProxy",
  }
  if create_method ~= false then
    cls[typeid] = function(self, ...) return create(self, typeid, ...) end
  end
end

-- Every manager class has its own register, bound to it, so that
-- Cls.register(...) (Python's spelling) knows its class.
local function bind_register(cls)
  rawset(cls, "register", function(first, ...)
    if type(first) == "table" and rawget(first, "__super") ~= nil then
      return register(first, ...)               -- Cls:register(...)
    end
    return register(cls, first, ...)
  end)
end
bind_register(BaseManager)

function BaseManager.extend(parent, name)
  local cls = Object.extend(parent, name)
  bind_register(cls)
  return cls
end

local MANAGER_ARGS = { "address", "authkey", "serializer", "ctx", "shutdown_timeout",
                       fname = "BaseManager" }

--[[ BaseManager{address, authkey, ctx, shutdown_timeout} (or the same
positionally): address is {host, port} (TCP; port 0 for a free one) or a
Unix socket's path, nil for a private one; authkey the key clients must
hold (default: the process's, current_process().authkey). ]]
function BaseManager:init(...)
  local address, authkey, serializer, ctx, shutdown_timeout =
    mp.connection._read_args(MANAGER_ARGS, ...)
  if address ~= nil then address = mp.connection._check_address(address, "BaseManager") end
  mp.connection._check_authkey(authkey, "BaseManager")
  if serializer ~= nil and serializer ~= "pickle" then
    error(exc.ValueError("BaseManager(): unknown serializer " .. repr(serializer) ..
                         " (gilua has one: its own, named 'pickle' for Python's sake)"), 3)
  end
  if ctx ~= nil then args.check(ctx, "table", "BaseManager", "ctx") end
  self.address = address
  self._key = authkey or mp.current_process().authkey
  self._ctx = ctx
  self._shutdown_timeout = args.timeout(shutdown_timeout or 1.0, "BaseManager", "zero",
                                        "shutdown_timeout")
  self._state = "initial"
end

local function check_initial(self, fname)
  local state = self._state
  if state == "initial" then return end
  if state == "shutdown" then error(ProcessError("Manager has shut down"), 3) end
  error(ProcessError(("%s(): already %s"):format(fname, state)), 3)
end

-- Binds the manager's socket: its descriptor, and the address (the real
-- one: port 0 becomes the port chosen).
local function bind(self)
  local address = self.address
  if address == nil then
    self._dir = _mp.mkdtemp()
    address = self._dir .. "/listener"
  end
  local fd, real = mp.connection._listen(address, 64)
  self.address = real
  return fd
end

-- start([initializer], [initargs]): the server in a new process.
function BaseManager:start(initializer, initargs)
  check_initial(self, "start")
  if args.is_options(initializer) then
    initializer, initargs = initializer.initializer, initializer.initargs
  end
  if initializer ~= nil then args.check(initializer, "callable", "BaseManager.start", "initializer") end
  if initargs ~= nil then args.check(initargs, "table", "BaseManager.start", "initargs") end
  local fd = bind(self)
  -- the server's half of the registry: no proxy classes (a spawned server
  -- may not have loaded their module when it reads its arguments)
  local registry = {}
  for typeid, e in next, self._registry do
    registry[typeid] = { callable = e.callable, maker = e.maker, kind = e.kind,
                         exposed = e.exposed, proxyname = e.proxyname }
  end
  local a = { fd, self.address, registry, self._key, os.getpid(), self._dir,
              initializer, initargs, n = 8 }
  local ctx = self._ctx
  local method = ctx and ctx.get_start_method and ctx.get_start_method() or mp.get_start_method()
  local ok, err = pcall(function()
    if method == "spawn" then
      self._process = mp.get_context("spawn").Process{ name = "SyncManager",
        target = M._run_server, args = a }
      self._process._keep_fds = { fd }
    else
      self._process = mp.get_context("fork").Process{ name = "SyncManager",
        target = run_server, args = a }
    end
    self._process:start()
  end)
  _mp.close(fd)
  if not ok then error(err, 0) end
  self._pid = os.getpid()
  self._state = "started"
  return self
end

-- connect(): to a manager's server started elsewhere (start(), or
-- get_server():serve_forever() in another process or on another host).
function BaseManager:connect()
  check_initial(self, "connect")
  if self.address == nil then
    error(exc.ValueError("BaseManager.connect(): the manager has no address"), 2)
  end
  -- refused, a wrong key, a server gone: the error now (a connection this
  -- thread kept from before may be stale: then one new try)
  local ping = { "ping", n = 1 }
  if not pcall(request, self.address, self._key, ping) then
    request(self.address, self._key, ping)
  end
  self._state = "connected"
  return self
end

-- get_server(): the server itself, to run in this process with
-- serve_forever(); its address is bound already (server.address).
function BaseManager:get_server()
  check_initial(self, "get_server")
  local fd = bind(self)
  self._state = "serving"
  return Server(self._registry, fd, self.address, self._key, nil, self._dir)
end

-- shutdown(): a manager started here stops its server process; a
-- connected one closes this thread's connection (the server goes on).
function BaseManager:shutdown()
  local state = self._state
  if state == "shutdown" or state == "initial" or state == "serving" then return end
  if self._pid ~= nil and self._pid ~= os.getpid() then return end   -- a fork's copy
  self._state = "shutdown"
  if state == "connected" then forget(self.address, self._key); return end
  pcall(request, self.address, self._key, { "shutdown", n = 1 })
  forget(self.address, self._key)
  self._process:join(self._shutdown_timeout)
  if self._process.exitcode == nil then self._process:terminate(); self._process:join() end
  if type(self.address) == "string" then _mp.remove(self.address) end
  if self._dir then _mp.remove(self._dir) end
end

BaseManager.__close = BaseManager.shutdown
-- A started manager collected stops its server; a connected one leaves
-- the thread's connection alone (its proxies use it).
BaseManager.__gc = function(self)
  if self._state == "started" then pcall(BaseManager.shutdown, self) end
end

function BaseManager:__tostring()
  return ("<%s %s %s>"):format(rawget(getmetatable(self), "__name"), self._state,
                               self.address and where(self.address) or "")
end

-- SyncManager: BaseManager with Python's types registered.
local SyncManager = BaseManager:extend("multiprocessing.managers.SyncManager")
M.SyncManager = SyncManager

for typeid, proxy in next, { dict = DictProxy, list = ListProxy, Namespace = NamespaceProxy,
    Value = ValueProxy, Queue = QueueProxy, JoinableQueue = QueueProxy, Lock = AcquirerProxy,
    RLock = AcquirerProxy, Semaphore = AcquirerProxy, BoundedSemaphore = AcquirerProxy,
    Event = AcquirerProxy, Condition = AcquirerProxy } do
  SyncManager.register(typeid, { proxytype = proxy, create_method = false })
  SyncManager._registry[typeid].maker = typeid
end

-- Arguments are checked here, in the caller's process, so that a mistake
-- is reported where it was made and names the method.
local function opt_table(v, fname, argname)
  if v ~= nil then args.check(v, "table", fname, argname) end
  return v
end

local function opt_count(v, fname, argname, min)
  if v == nil then return nil end
  return util.check_int(v, fname, argname, min)
end

function SyncManager:dict(init) return create(self, "dict", opt_table(init, "SyncManager.dict", "init")) end
function SyncManager:list(init) return create(self, "list", opt_table(init, "SyncManager.list", "init")) end
function SyncManager:Namespace(init)
  return create(self, "Namespace", opt_table(init, "SyncManager.Namespace", "init"))
end
function SyncManager:Value(typecode, v)
  args.check(typecode, "string", "SyncManager.Value", "typecode")
  return create(self, "Value", typecode, v)
end
function SyncManager:Queue(maxsize)
  return create(self, "Queue", opt_count(maxsize, "SyncManager.Queue", "maxsize"))
end
function SyncManager:JoinableQueue(maxsize)
  return create(self, "JoinableQueue", opt_count(maxsize, "SyncManager.JoinableQueue", "maxsize"))
end
function SyncManager:Lock(...) util.no_args("SyncManager.Lock", ...) return create(self, "Lock") end
function SyncManager:RLock(...) util.no_args("SyncManager.RLock", ...) return create(self, "RLock") end
function SyncManager:Semaphore(v)
  return create(self, "Semaphore", opt_count(v, "SyncManager.Semaphore", "value", 0))
end
function SyncManager:BoundedSemaphore(v)
  return create(self, "BoundedSemaphore", opt_count(v, "SyncManager.BoundedSemaphore", "value", 0))
end
function SyncManager:Event(...) util.no_args("SyncManager.Event", ...) return create(self, "Event") end
function SyncManager:Condition(...)
  util.no_args("SyncManager.Condition", ...)
  return create(self, "Condition")
end

-- Managers started here and still running at exit are shut down.
local live = setmetatable({}, { __mode = "k" })
local plain_start = BaseManager.start
function BaseManager:start(...)
  plain_start(self, ...)
  live[self] = true
  return self
end
threading._register_atexit(function()
  for m in next, live do pcall(m.shutdown, m) end
end)

-- Manager([ctx]): a SyncManager, started (its server on a private Unix
-- socket). Manager.register(...) registers on SyncManager, so that local
-- managers have the user's types too.
function M._start_manager(ctx)
  return SyncManager{ ctx = ctx }:start()
end

M.Manager = setmetatable({ register = SyncManager.register }, {
  __call = function(_, ...)
    util.no_args("Manager", ...)
    return M._start_manager()
  end,
  __tostring = function() return "function Manager" end,
})

return M
