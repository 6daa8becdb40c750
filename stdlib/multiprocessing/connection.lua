--[[
multiprocessing.connection: Python's Listener and Client, connections
between processes that did not start one another, on this machine (a Unix
socket: the address is a path) or across machines (TCP: the address is
{host, port}).

    local connection = require "multiprocessing.connection"
    local listener <close> = connection.Listener({"0.0.0.0", 6000}, nil, nil, "secret")
    local conn <close> = listener:accept()        -- then conn:recv(), conn:send(v)

    local conn <close> = connection.Client({"server.example", 6000}, nil, "secret")
    conn:send({op = "hello"}); print(conn:recv())

With an authkey, both ends prove they hold it (challenge and HMAC-SHA256
answer, both ways) before anything else is read; a peer that does not
answer within handshake_timeout seconds is refused. The channel is not
encrypted: whoever sees the traffic sees the messages; run it on a
trusted network, or through a tunnel (ssh -L, WireGuard, a VPN).

Also here, as in Python's module: Pipe, wait, deliver_challenge,
answer_challenge (the table is multiprocessing.connection itself).
]]

local mp = require "multiprocessing"
local _mp = require "_multiprocessing"
local Object = require "gilua.class"
local exc = require "gilua.exceptions"
local args = require "gilua.args"
local util = require "multiprocessing._util"

local type, error, tostring, pcall, math_type = type, error, tostring, pcall, math.type
local TypeError, ValueError = exc.TypeError, exc.ValueError

local M = mp.connection

-- How long a server waits for a peer's part of the handshake, in seconds.
M.HANDSHAKE_TIMEOUT = 20

--[[ Addresses. A string is a Unix socket's path; {host, port} a TCP
address (host "" or "0.0.0.0": every interface, port 0: a free port
chosen by the system). The family, when given, must agree. ]]
local FAMILIES = { AF_UNIX = true, AF_INET = true, AF_INET6 = true }

function M.address_type(address)
  if type(address) == "string" then return "AF_UNIX" end
  if type(address) == "table" then return "AF_INET" end
  error(TypeError("address type of " .. tostring(address) .. " unrecognized"), 2)
end

-- Checks an address for fname; returns it, a copy for TCP.
function M._check_address(address, fname, family)
  if family ~= nil then
    if type(family) ~= "string" then
      error(TypeError(("%s(): argument 'family' must be a string, not %s")
                      :format(fname, args.typename(family))), 3)
    end
    if not FAMILIES[family] then
      error(ValueError(("%s(): unrecognized family '%s' (AF_UNIX, AF_INET or AF_INET6)")
                       :format(fname, family)), 3)
    end
  end
  if type(address) == "string" then
    if family ~= nil and family ~= "AF_UNIX" then
      error(ValueError(("%s(): a path is an AF_UNIX address, not %s"):format(fname, family)), 3)
    end
    if address == "" or address:find("\0", 1, true) then
      error(ValueError(("%s(): argument 'address' is not a valid socket path"):format(fname)), 3)
    end
    return address
  end
  if type(address) ~= "table" then
    error(TypeError(("%s(): argument 'address' must be a path (string) or {host, port}, not %s")
                    :format(fname, args.typename(address))), 3)
  end
  if family == "AF_UNIX" then
    error(ValueError(("%s(): an AF_UNIX address is a path, not {host, port}"):format(fname)), 3)
  end
  local host, port = address[1], address[2]
  if host == nil then host = address.host end
  if port == nil then port = address.port end
  if type(host) ~= "string" then
    error(TypeError(("%s(): the host of 'address' must be a string, not %s")
                    :format(fname, args.typename(host))), 3)
  end
  if math_type(port) ~= "integer" then
    if math_type(port) == "float" and port % 1 == 0 then port = math.tointeger(port) end
    if math_type(port) ~= "integer" then
      error(TypeError(("%s(): the port of 'address' must be an integer, not %s")
                      :format(fname, args.typename(port))), 3)
    end
  end
  if port < 0 or port > 65535 then
    error(exc.OverflowError(("%s(): port must be 0-65535, not %d"):format(fname, port)), 3)
  end
  return { host, port }
end

-- Text for messages and a key for tables: "host:port" or the path.
function M._address_string(address)
  if type(address) == "table" then return address[1] .. ":" .. address[2] end
  return address
end

-- Listens on a checked address: the descriptor and the address bound.
function M._listen(address, backlog)
  if type(address) == "string" then return _mp.listen(address, backlog), address end
  local fd, host, port = _mp.listen_tcp(address[1], address[2], backlog)
  return fd, { host, port }
end

-- A connection to a checked address.
function M._connect(address)
  if type(address) == "string" then return _mp.connect(address) end
  return _mp.connect_tcp(address[1], address[2])
end

-- A single table argument is the options, unless it is an address
-- ({host, port}: it has [1]).
local function read_args(spec, ...)
  local first = ...
  if select("#", ...) == 1 and args.is_options(first) and first[1] == nil then
    return args.get(spec, ...)
  end
  if select("#", ...) > #spec then
    error(TypeError(("%s() takes at most %d arguments (%d given)")
                    :format(spec.fname, #spec, select("#", ...))), 3)
  end
  return ...
end
M._read_args = read_args

local function check_authkey(key, fname)
  if key ~= nil and type(key) ~= "string" then
    error(TypeError(("%s(): argument 'authkey' must be a string, not %s")
                    :format(fname, args.typename(key))), 3)
  end
  return key
end
M._check_authkey = check_authkey

-- Both ways, the server's side challenging first; a failure closes conn.
local function authenticate(conn, key, timeout, server)
  local ok, err = pcall(function()
    if server then M.deliver_challenge(conn, key, timeout) end
    M.answer_challenge(conn, key, timeout)
    if not server then M.deliver_challenge(conn, key, timeout) end
  end)
  if not ok then
    conn:close()
    error(err, 0)
  end
end
M._authenticate = authenticate

-- Listener ---------------------------------------------------------------------

local Listener = Object:extend("multiprocessing.connection.Listener")
M.Listener = Listener

local LISTENER_ARGS = { "address", "family", "backlog", "authkey", "handshake_timeout",
                        fname = "Listener" }

function Listener:init(...)
  local address, family, backlog, authkey, hs = read_args(LISTENER_ARGS, ...)
  if backlog ~= nil then backlog = util.check_int(backlog, "Listener", "backlog", 0) end
  self._authkey = check_authkey(authkey, "Listener")
  self._timeout = hs ~= nil and args.timeout(hs, "Listener", "zero", "handshake_timeout")
                  or M.HANDSHAKE_TIMEOUT
  if address == nil then      -- Python's arbitrary address of the family
    if family == "AF_INET" or family == "AF_INET6" then
      address = { family == "AF_INET6" and "::1" or "127.0.0.1", 0 }
    else
      self._dir = _mp.mkdtemp("/tmp/gilua-listener-")
      address = self._dir .. "/socket"
    end
  end
  address = M._check_address(address, "Listener", family)
  self._fd, self.address = M._listen(address, backlog or 1)
  self._family = M.address_type(address)
  self.last_accepted = nil
end

-- accept() -> a Connection; with an authkey, once the peer has proved it
-- holds the key (AuthenticationError otherwise, the connection closed).
function Listener:accept()
  if self._fd == nil then error(exc.OSError("listener is closed"), 2) end
  local conn, host, port = _mp.accept(self._fd)
  self.last_accepted = host and { host, port } or nil
  if self._authkey ~= nil then authenticate(conn, self._authkey, self._timeout, true) end
  return conn
end

function Listener:fileno() return self._fd end

function Listener:close()
  if self._fd == nil then return end
  _mp.close(self._fd)
  self._fd = nil
  if self._family == "AF_UNIX" then _mp.remove(self.address) end
  if self._dir then _mp.remove(self._dir) end
end

Listener.__close = Listener.close
Listener.__gc = Listener.close

function Listener:__tostring()
  return ("<multiprocessing.connection.Listener %s%s>"):format(
    M._address_string(self.address), self._fd and "" or " closed")
end

-- Client -------------------------------------------------------------------------

local CLIENT_ARGS = { "address", "family", "authkey", "handshake_timeout", fname = "Client" }

-- Client(address, family, authkey) -> a Connection to a Listener.
function M.Client(...)
  local address, family, authkey, hs = read_args(CLIENT_ARGS, ...)
  address = M._check_address(address, "Client", family)
  check_authkey(authkey, "Client")
  if hs ~= nil then hs = args.timeout(hs, "Client", "zero", "handshake_timeout") end
  local conn = M._connect(address)
  if authkey ~= nil then authenticate(conn, authkey, hs, false) end
  return conn
end

return M
