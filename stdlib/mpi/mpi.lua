--[[
mpi: MPI from gilua, mpi4py's lowercase (any Lua value) API in gilua's
conventions, over the system's Open MPI.

    local mpi = require "mpi"
    local comm = mpi.COMM_WORLD
    if comm.rank == 0 then
      comm:send({1, 2, 3}, 1, 7)
    elseif comm.rank == 1 then
      local data, status = comm:recv(0, mpi.ANY_TAG)   -- status.source, .tag
    end
    local total = comm:allreduce(comm.rank, mpi.SUM)

Run with `mpiexec -n 4 gilua script.lua`, or alone (a world of one, which
can start workers: mpi.COMM_SELF:spawn, or mpi.futures).

The C half `_mpi` is a loadable module (gilua itself does not link MPI):
when it or the MPI library is missing, `require "mpi"` raises ImportError
saying what to install. Values travel through the serializer of
multiprocessing (`dumps`/`loads`), so any value a process pipe carries
does: tables (shared parts and cycles kept), functions with their
upvalues, classes, nil. Both ends must run the same gilua on the same
kind of machine.

Every call that waits releases the GIL, and waits by polling (no core is
spun), so other threads run and Ctrl-C interrupts. MPI_THREAD_MULTIPLE is
asked for; if MPI grants less, calls are serialised by a lock.

Where it differs from mpi4py (see docs/distributed.md):
  * recv returns the value and a Status (status.source, .tag, .count, the
    size in bytes); a Status passed as third argument is filled too.
  * irecv takes the first matching message when it is tested or waited
    for, so it needs no buffer size; test() returns done, value, status.
  * gather, allgather and alltoall return arrays indexed by rank + 1, with
    n set (a rank may send nil).
  * reduce, allreduce, scan and exscan take mpi.SUM, mpi.PROD, mpi.MAX,
    mpi.MIN, mpi.LAND, mpi.LOR, mpi.LXOR, mpi.BAND, mpi.BOR, mpi.BXOR,
    mpi.MAXLOC, mpi.MINLOC ({value, index} pairs), mpi.REPLACE,
    mpi.NO_OP, mpi.Op(fn, commute) or any function of two values, applied
    in rank order.
]]

local Object = require "gilua.class"
local exc = require "gilua.exceptions"
local args = require "gilua.args"
local _mp = require "_multiprocessing"

local dumps, loads = _mp.dumps, _mp.loads
local type, select, error, tostring, setmetatable, pcall, rawget =
  type, select, error, tostring, setmetatable, pcall, rawget
local mtype = math.type
local TypeError, ValueError = exc.TypeError, exc.ValueError

local M = {}

local INSTALL = "install Open MPI (Debian: apt-get install libopenmpi-dev openmpi-bin, " ..
                "or `make deps` in gilua's tree)"

local ok, C = pcall(require, "_mpi")
if not ok then
  local why = tostring(C)
  if why:find("module '_mpi' not found", 1, true) then
    error(exc.ImportError("mpi: this gilua was built without MPI support: " .. INSTALL ..
                          ", then rebuild gilua (`make`)"), 0)
  end
  error(exc.ImportError("mpi: the MPI library cannot be loaded (" ..
                        (why:match("\n%s*([^\n]*)$") or why) .. "): " .. INSTALL), 0)
end

--[[ mpi.Exception, as mpi4py's MPI.Exception: a RuntimeError carrying
MPI's error code and class. ]]
local MPIException = exc.RuntimeError:extend("mpi.Exception")
M.Exception = MPIException
function MPIException:init(msg, code, class)
  exc.RuntimeError.init(self, msg, code, class)
  self.error_code, self.error_class = code, class
end

C.seterror(function(msg, code, class) error(MPIException(msg, code, class), 0) end)

local provided = C.init()

for _, k in ipairs{ "ANY_SOURCE", "ANY_TAG", "PROC_NULL", "UNDEFINED", "THREAD_SINGLE",
                    "THREAD_FUNNELED", "THREAD_SERIALIZED", "THREAD_MULTIPLE" } do
  M[k] = C[k]
end
local ANY_SOURCE, ANY_TAG, PROC_NULL, UNDEFINED = C.ANY_SOURCE, C.ANY_TAG, C.PROC_NULL, C.UNDEFINED
M.TAG_UB = C.tag_ub()
local TAG_UB = M.TAG_UB

function M.query_thread() return provided end
M.wtime, M.wtick = C.wtime, C.wtick
M.get_processor_name = C.processor_name
function M.get_version()
  local major, minor = C.version()
  return major, minor
end
function M.get_library_version() return (select(3, C.version())) end
function M.finalize() C.finalize() end
function M.is_finalized() return C.finalized() end
function M.is_initialized() return true end

-- Status ------------------------------------------------------------------------------

local Status = Object:extend("mpi.Status")
M.Status = Status
function Status:init()
  self.source, self.tag, self.error, self.count = ANY_SOURCE, ANY_TAG, 0, 0
end
function Status:__tostring()
  return ("<mpi.Status source=%d tag=%d count=%d>"):format(self.source, self.tag, self.count)
end

local function status_of(st, source, tag, count)
  st = st or setmetatable({}, Status)
  st.source, st.tag, st.error, st.count = source, tag, 0, count
  return st
end

-- Reduction operations ----------------------------------------------------------------

local Op = Object:extend("mpi.Op")
M.Op = Op
function Op:init(fn, commute, name)
  self.fn = args.check(fn, "callable", "mpi.Op", "fn")
  self.commute = commute and true or false
  self.name = name
end
function Op:__call(a, b) return self.fn(a, b) end
function Op:__tostring() return "<mpi.Op " .. (self.name or "user") .. ">" end
-- mpi4py spells it Op.Create(fn, commute)
function Op.Create(fn, commute) return Op(fn, commute) end

local function loc(better)
  return function(x, y)
    local u, i, v, j = x[1], x[2], y[1], y[2]
    if u == v then return { u, (j < i) and j or i } end
    if better(u, v) then return { u, i } end
    return { v, j }
  end
end

M.SUM = Op(function(a, b) return a + b end, true, "SUM")
M.PROD = Op(function(a, b) return a * b end, true, "PROD")
M.MAX = Op(function(a, b) if b > a then return b end return a end, true, "MAX")
M.MIN = Op(function(a, b) if b < a then return b end return a end, true, "MIN")
M.LAND = Op(function(a, b) return (a and b) and true or false end, true, "LAND")
M.LOR = Op(function(a, b) return (a or b) and true or false end, true, "LOR")
M.LXOR = Op(function(a, b) return (not a) ~= (not b) end, true, "LXOR")
M.BAND = Op(function(a, b) return a & b end, true, "BAND")
M.BOR = Op(function(a, b) return a | b end, true, "BOR")
M.BXOR = Op(function(a, b) return a ~ b end, true, "BXOR")
M.MAXLOC = Op(loc(function(u, v) return u > v end), true, "MAXLOC")
M.MINLOC = Op(loc(function(u, v) return u < v end), true, "MINLOC")
M.REPLACE = Op(function(_, b) return b end, false, "REPLACE")
M.NO_OP = Op(function(a) return a end, false, "NO_OP")

-- Folds values[1..n] with op, in rank order.
local function fold(op, values, n)
  local acc = values[1]
  for i = 2, n do acc = op(acc, values[i]) end
  return acc
end

-- Communicators -----------------------------------------------------------------------

local Comm = Object:extend("mpi.Comm")
M.Comm = Comm
local Intracomm = Comm:extend("mpi.Intracomm")
M.Intracomm = Intracomm
local Intercomm = Comm:extend("mpi.Intercomm")
M.Intercomm = Intercomm

-- A communicator object around a C handle (nil stays nil).
local function wrap(h)
  if h == nil then return nil end
  local rank, size, remote, inter = C.info(h)
  local c = setmetatable({ _h = h, rank = rank, size = size }, inter and Intercomm or Intracomm)
  if inter then c.remote_size = remote end
  return c
end
M._wrap = wrap

function Comm:init()
  error(TypeError("mpi.Comm: communicators are made by MPI (COMM_WORLD, split, dup, spawn)"), 3)
end

function Comm:__tostring()
  local h = rawget(self, "_h")
  local name = rawget(getmetatable(self), "__name")
  if h == nil then return "<" .. name .. " freed>" end
  return ("<%s rank %d of %d%s>"):format(name, self.rank, self.size,
    self.remote_size and (", remote group of " .. self.remote_size) or "")
end

local function handle(self, fname)
  local h = type(self) == "table" and rawget(self, "_h")
  if not h then
    error(ValueError(fname .. "(): the communicator is freed (or this is not one)"), 3)
  end
  return h
end

local function fail(cls, fname, fmt, ...)
  error(cls(fname .. "(): " .. fmt:format(...)), 3)
end

-- The ranks a message may go to: the remote group of an intercommunicator.
local function peers(self) return self.remote_size or self.size end

local function check_rank(self, r, fname, what, any)
  if mtype(r) ~= "integer" then
    r = args.check(r, "integer", fname, what)
  end
  if r == PROC_NULL or (any and r == ANY_SOURCE) then return r end
  if r < 0 or r >= peers(self) then
    fail(ValueError, fname, "'%s' must be a rank from 0 to %d, not %d", what, peers(self) - 1, r)
  end
  return r
end

local function check_tag(t, fname, any)
  if t == nil then return any and ANY_TAG or 0 end
  if mtype(t) ~= "integer" then t = args.check(t, "integer", fname, "tag") end
  if any and t == ANY_TAG then return t end
  if t < 0 or t > TAG_UB then
    fail(ValueError, fname, "'tag' must be from 0 to %d, not %d", TAG_UB, t)
  end
  return t
end

local function check_root(self, root, fname)
  if root == nil then return 0 end
  root = args.check(root, "integer", fname, "root")
  if root < 0 or root >= self.size then
    fail(ValueError, fname, "'root' must be a rank from 0 to %d, not %d", self.size - 1, root)
  end
  return root
end

local function intra(self, fname)
  if self.remote_size then
    fail(exc.NotImplementedError, fname, "not available on an intercommunicator")
  end
  return handle(self, fname)
end

-- Point to point ------------------------------------------------------------------------

function Comm:send(obj, dest, tag)
  local h = handle(self, "Comm.send")
  dest = check_rank(self, dest, "Comm.send", "dest")
  tag = check_tag(tag, "Comm.send")
  if dest == PROC_NULL then return end
  C.send(h, dumps(obj), dest, tag)
end

local RECV_ARGS = { "source", "tag", "status", fname = "Comm.recv" }

function Comm:recv(...)
  local h = handle(self, "Comm.recv")
  local source, tag, status = args.get(RECV_ARGS, ...)
  source = source == nil and ANY_SOURCE or check_rank(self, source, "Comm.recv", "source", true)
  tag = check_tag(tag, "Comm.recv", true)
  if source == PROC_NULL then return nil, status_of(status, PROC_NULL, ANY_TAG, 0) end
  local bytes, src, t = C.recv(h, source, tag)
  return loads(bytes), status_of(status, src, t, #bytes)
end

local PROBE_ARGS = { "source", "tag", "status", fname = "Comm.probe" }

--[[ probe waits for a matching message and leaves it queued; returns
true and its Status. iprobe returns at once: false when there is none. ]]
local function probe(self, timeout, fname, ...)
  local h = handle(self, fname)
  local source, tag, status = args.get(PROBE_ARGS, ...)
  source = source == nil and ANY_SOURCE or check_rank(self, source, fname, "source", true)
  tag = check_tag(tag, fname, true)
  local src, t, count = C.probe(h, source, tag, timeout)
  if src == nil then return false end
  return true, status_of(status, src, t, count)
end

function Comm:probe(...) return probe(self, nil, "Comm.probe", ...) end
function Comm:iprobe(...) return probe(self, 0, "Comm.iprobe", ...) end

local Request = Object:extend("mpi.Request")
M.Request = Request

local function request(r, kind)
  return setmetatable({ _r = r, _kind = kind }, Request)
end

function Comm:isend(obj, dest, tag)
  local h = handle(self, "Comm.isend")
  dest = check_rank(self, dest, "Comm.isend", "dest")
  tag = check_tag(tag, "Comm.isend")
  if dest == PROC_NULL then return request(nil, "null") end
  return request(C.isend(h, dumps(obj), dest, tag), "send")
end

local IRECV_ARGS = { "source", "tag", fname = "Comm.irecv" }

function Comm:irecv(...)
  local h = handle(self, "Comm.irecv")
  local source, tag = args.get(IRECV_ARGS, ...)
  source = source == nil and ANY_SOURCE or check_rank(self, source, "Comm.irecv", "source", true)
  tag = check_tag(tag, "Comm.irecv", true)
  if source == PROC_NULL then return request(nil, "null") end
  return request(C.irecv(h, source, tag), "recv")
end

-- The outcome of a finished request: the value (receives), and its status.
local function settle(self, status, done, bytes, src, tag)
  if not done then return false end
  local v, st
  if self._kind == "recv" then
    v, st = loads(bytes), status_of(status, src, tag, #bytes)
  else
    st = status_of(status, PROC_NULL, ANY_TAG, 0)
  end
  self._done, self._value, self._status = true, v, st
  return true
end

--[[ wait([status]) -> the value received (nil for a send), status.
test([status]) -> done, value, status. ]]
function Request:wait(status)
  if not self._done then
    if self._r == nil then settle(self, status, true, "", PROC_NULL, ANY_TAG)
    else settle(self, status, self._r:test(true)) end
  end
  return self._value, self._status
end

function Request:test(status)
  if not self._done then
    if self._r == nil then settle(self, status, true, "", PROC_NULL, ANY_TAG)
    elseif not settle(self, status, self._r:test(false)) then return false end
  end
  return true, self._value, self._status
end

function Request:cancel()
  if self._done or self._r == nil then return false end
  if self._r:cancel() then
    self._done, self._cancelled = true, true
    self._status = status_of(nil, PROC_NULL, ANY_TAG, 0)
    self._status.cancelled = true
    return true
  end
  return false
end

function Request:__tostring()
  return ("<mpi.Request %s%s>"):format(self._kind, self._done and " done" or "")
end

local function check_requests(reqs, fname)
  args.check(reqs, "table", fname, "requests")
  for i = 1, #reqs do
    if not Request:is(reqs[i]) then
      fail(TypeError, fname, "item %d is not an mpi.Request", i)
    end
  end
  return reqs
end

-- Request.waitall(reqs) -> array of the values (with n).
function Request.waitall(reqs)
  check_requests(reqs, "Request.waitall")
  local out = { n = #reqs }
  for i = 1, #reqs do out[i] = reqs[i]:wait() end
  return out
end

-- Request.testall(reqs) -> false, or true and the array of values.
function Request.testall(reqs)
  check_requests(reqs, "Request.testall")
  local all = true
  for i = 1, #reqs do
    if not reqs[i]:test() then all = false end
  end
  if not all then return false end
  local out = { n = #reqs }
  for i = 1, #reqs do out[i] = reqs[i]._value end
  return true, out
end

-- Request.waitany(reqs) -> index, value of the first request done.
function Request.waitany(reqs)
  check_requests(reqs, "Request.waitany")
  local naps = 0
  while true do
    for i = 1, #reqs do
      local done, v = reqs[i]:test()
      if done then return i, v end
    end
    naps = naps + 1
    local _ = require("time").sleep(naps < 100 and 0 or 0.001)
  end
end

-- sendrecv(sendobj, dest, sendtag, source, recvtag, status) -> value, status
function Comm:sendrecv(obj, dest, sendtag, source, recvtag, status)
  local r = self:isend(obj, dest, sendtag)
  local v, st = self:recv(source == nil and ANY_SOURCE or source, recvtag, status)
  r:wait()
  return v, st
end

-- Collectives ----------------------------------------------------------------------------

function Comm:barrier()
  C.barrier(handle(self, "Comm.barrier"))
end

function Intracomm:bcast(obj, root)
  local h = intra(self, "Comm.bcast")
  root = check_root(self, root, "Comm.bcast")
  local mine = self.rank == root
  local bytes = C.bcast(h, mine and dumps(obj) or nil, root, self.rank)
  if mine then return obj end
  return loads(bytes)
end

local function unpack_all(pieces, n)
  local out = { n = n }
  for i = 1, n do out[i] = loads(pieces[i]) end
  return out
end

function Intracomm:gather(obj, root)
  local h = intra(self, "Comm.gather")
  root = check_root(self, root, "Comm.gather")
  local pieces = C.gather(h, dumps(obj), root, self.rank, self.size)
  if pieces == nil then return nil end
  return unpack_all(pieces, self.size)
end

function Intracomm:allgather(obj)
  local h = intra(self, "Comm.allgather")
  return unpack_all(C.allgather(h, dumps(obj), self.size), self.size)
end

-- The array a root gives: exactly one value per rank.
local function per_rank(self, t, fname, what)
  if type(t) ~= "table" then
    fail(TypeError, fname, "'%s' must be an array of %d values, not %s", what, self.size, args.typename(t))
  end
  local n = t.n or #t
  if n ~= self.size then
    fail(ValueError, fname, "'%s' must have one value per rank (%d), not %d", what, self.size, n)
  end
  local pieces = {}
  for i = 1, self.size do pieces[i] = dumps(t[i]) end
  return pieces
end

function Intracomm:scatter(obj, root)
  local h = intra(self, "Comm.scatter")
  root = check_root(self, root, "Comm.scatter")
  local pieces
  -- a root whose array is wrong still takes part, so that the others do
  -- not wait for ever; then it raises
  local ok, err = true, nil
  if self.rank == root then
    ok, err = pcall(per_rank, self, obj, "Comm.scatter", "sendobj")
    pieces = ok and err or nil
  end
  if self.rank == root and not ok then
    local filler = {}
    for i = 1, self.size do filler[i] = dumps(nil) end
    C.scatter(h, filler, root, self.rank, self.size)
    error(err, 2)
  end
  return loads(C.scatter(h, pieces, root, self.rank, self.size))
end

function Intracomm:alltoall(obj)
  local h = intra(self, "Comm.alltoall")
  local pieces = per_rank(self, obj, "Comm.alltoall", "sendobj")
  return unpack_all(C.alltoall(h, pieces, self.size), self.size)
end

local function check_op(op, fname)
  if op == nil then return M.SUM end
  return args.check(op, "callable", fname, "op")
end

function Intracomm:reduce(obj, op, root)
  op = check_op(op, "Comm.reduce")
  local all = self:gather(obj, root)
  if all == nil then return nil end
  return fold(op, all, self.size)
end

function Intracomm:allreduce(obj, op)
  op = check_op(op, "Comm.allreduce")
  return fold(op, self:allgather(obj), self.size)
end

-- scan: the reduction of ranks 0..rank; exscan: of ranks 0..rank-1 (nil on 0).
function Intracomm:scan(obj, op)
  op = check_op(op, "Comm.scan")
  return fold(op, self:allgather(obj), self.rank + 1)
end

function Intracomm:exscan(obj, op)
  op = check_op(op, "Comm.exscan")
  if self.rank == 0 then
    self:allgather(obj)
    return nil
  end
  return fold(op, self:allgather(obj), self.rank)
end

-- Making communicators --------------------------------------------------------------------

--[[ split(color, key) -> a communicator of the ranks that gave the same
color, ordered by key then rank; nil for a color of nil or mpi.UNDEFINED. ]]
function Intracomm:split(color, key)
  local h = intra(self, "Comm.split")
  if color ~= nil then
    color = args.check(color, "integer", "Comm.split", "color")
    if color == UNDEFINED then color = nil
    elseif color < 0 then fail(ValueError, "Comm.split", "'color' must be >= 0, not %d", color) end
  end
  key = key == nil and 0 or args.check(key, "integer", "Comm.split", "key")
  return wrap(C.split(h, color, key))
end

function Comm:dup() return wrap(C.dup(handle(self, "Comm.dup"))) end

-- free() and disconnect(): this object is unusable afterwards.
local function let_go(self, what, fn)
  local h = handle(self, "Comm." .. what)
  if self == M.COMM_WORLD or self == M.COMM_SELF then
    error(ValueError(("Comm.%s(): a predefined communicator cannot be let go"):format(what)), 3)
  end
  self._h = nil
  fn(h)
end

function Comm:free() let_go(self, "free", C.free) end
function Comm:disconnect() let_go(self, "disconnect", C.disconnect) end

function Comm:abort(code)
  C.abort(handle(self, "Comm.abort"), code == nil and 1 or args.check(code, "integer", "Comm.abort", "errorcode"))
end

-- merge(high) -> the intracommunicator of both groups (high: this group last).
function Intercomm:merge(high)
  return wrap(C.merge(handle(self, "Intercomm.merge"), high))
end

local SPAWN_ARGS = { "command", "args", "maxprocs", "info", "root", fname = "Comm.spawn" }

--[[ spawn(command, args, maxprocs, info, root) -> an intercommunicator to
the new processes (their group is its remote group), and the array of
their error codes. The root's arguments count; info is a table of MPI
info keys (wdir, host, ...), the working directory being this one by
default. ]]
function Intracomm:spawn(...)
  local h = intra(self, "Comm.spawn")
  local command, argv, maxprocs, info, root = args.get(SPAWN_ARGS, ...)
  command = args.check(command, "string", "Comm.spawn", "command")
  argv = argv == nil and {} or args.check(argv, "table", "Comm.spawn", "args")
  for i = 1, #argv do argv[i] = tostring(argv[i]) end
  maxprocs = maxprocs == nil and 1 or args.check(maxprocs, "integer", "Comm.spawn", "maxprocs")
  if maxprocs < 1 then fail(ValueError, "Comm.spawn", "'maxprocs' must be at least 1, not %d", maxprocs) end
  root = check_root(self, root, "Comm.spawn")
  local inf = { wdir = C.getcwd() }
  if info ~= nil then
    for k, v in pairs(args.check(info, "table", "Comm.spawn", "info")) do inf[k] = tostring(v) end
  end
  -- Open MPI never returns from a spawn whose program it cannot start:
  -- a program that is not here (and no other host named) fails now.
  if not (inf.host or inf.hostfile or inf["add-host"] or inf["add-hostfile"]) and not C.which(command) then
    error(exc.FileNotFoundError(2, "No such file or directory (Comm.spawn: no executable program)", command), 2)
  end
  local ih, codes = C.spawn(h, command, argv, maxprocs, root, inf)
  return wrap(ih), codes
end

-- The predefined ones ---------------------------------------------------------------------

M.COMM_WORLD = wrap(C.world())
M.COMM_SELF = wrap(C.self())

-- Comm.get_parent() -> the intercommunicator to the spawning processes, or nil.
local parent
function Comm.get_parent()
  if parent == nil then parent = wrap(C.parent()) or false end
  return parent or nil
end
M.get_parent = Comm.get_parent

M._C = C
return M
