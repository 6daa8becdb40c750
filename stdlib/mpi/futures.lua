--[[
mpi.futures: concurrent.futures over MPI, as mpi4py.futures.

    local mpif = require "mpi.futures"
    local pool <close> = mpif.MPIPoolExecutor{max_workers = 4}
    local f = pool:submit(fn, 1, 2)            -- a concurrent.futures.Future
    print(f:result())
    local squares = pool:map(function(x) return x * x end, {1, 2, 3})
    for r in ipairs(pool:map(fn, xs, {unordered = true})) do ... end

Workers are gilua processes. Run alone (`gilua script.lua`), the executor
starts them with MPI_Comm_spawn, on this machine unless MPI is told
otherwise (mpi_info = {host = ..., hostfile = ...}, or the mpiexec the
script runs under). Run as

    mpiexec -n 5 gilua -m mpi.futures script.lua

rank 0 runs the script and the other four ranks are the workers of its
MPIPoolExecutor (one executor at a time). MPICommExecutor(comm, root)
makes every rank of comm but the root a worker: on the root it returns
the executor, elsewhere it serves tasks until the root shuts the executor
down, then returns nil:

    local ex <close> = mpif.MPICommExecutor(mpi.COMM_WORLD, 0)
    if ex then ... end

The executor is concurrent.futures' own: the same Future, wait,
as_completed, map (plus the option unordered = true: results in the order
they finish), starmap, shutdown(wait, cancel_futures), <close>. Tasks and
their results travel through the serializer (functions with their
upvalues). A worker loads the program's main script first, with __name__
== "__mp_main__" (as multiprocessing's spawn does), so the functions and
globals the script defines outside its `if __name__ == "__main__"` block
exist there.

A worker that dies (on this machine: its process is watched) breaks the
executor as ProcessPoolExecutor does: every pending future fails with
BrokenExecutor, and so does submit. An initializer that fails breaks it
too. A worker on another host that dies is reported by Open MPI, which
then ends the job (see docs/distributed.md).
]]

if ... == "__main__" then
  return require("mpi.futures")._main()
end

local mpi = require "mpi"
local futures = require "concurrent.futures"
local threading = require "threading"
local pool = require "multiprocessing.pool"
local process = require "multiprocessing.executor"
local _mp = require "_multiprocessing"
local gil = require "gil"
local time = require "time"
local exc = require "gilua.exceptions"
local args = require "gilua.args"

local C = mpi._C
local dumps, loads = _mp.dumps, _mp.loads
local run_task, finish = pool._run_task, process._finish
local ANY_SOURCE, ANY_TAG = mpi.ANY_SOURCE, mpi.ANY_TAG
local BrokenExecutor = futures.BrokenExecutor
local RuntimeError, ValueError, TypeError = exc.RuntimeError, exc.ValueError, exc.TypeError
local pack, unpack = table.pack, table.unpack
local next, pcall, xpcall, type, tostring, select, error =
  next, pcall, xpcall, type, tostring, select, error
local monotonic = time.monotonic

local M = {}

for _, k in ipairs{ "Future", "wait", "as_completed", "FIRST_COMPLETED", "FIRST_EXCEPTION",
                    "ALL_COMPLETED", "CancelledError", "TimeoutError", "BrokenExecutor",
                    "InvalidStateError" } do
  M[k] = futures[k]
end

-- Message tags on the executor's own communicator.
local TASK, RESULT, CTRL = 1, 2, 3
-- Tasks a worker holds at most (one running, the others queued in MPI), so
-- that it never waits for the next one.
local DEPTH = 4
-- Seconds between two checks that the workers on this machine still live.
local LIVENESS = 0.05

local BOOTSTRAP_MSG = [[
An attempt has been made to start an MPI executor while a worker was
loading the main script. Guard the program's start with

    if __name__ == "__main__" then
        ...
    end

The main script is run again, as __mp_main__, in every worker.]]

-- The worker side ---------------------------------------------------------------------

local main_loaded, bootstrapping = false, false

-- What the first executor a worker serves tells it: the module paths, and
-- the main script, run once as __mp_main__.
local function prepare(msg)
  package.path, package.cpath = msg.path, msg.cpath
  if msg.main == nil or main_loaded then return true end
  main_loaded = true
  _G.arg = msg.arg
  _G.__name__ = "__mp_main__"
  bootstrapping = true
  local ok, err = xpcall(function()
    local chunk = assert(loadfile(msg.main))
    chunk(unpack(msg.arg, 1, #msg.arg))
  end, function(e) return debug.traceback(tostring(e), 2) end)
  bootstrapping = false
  return ok, err
end

local function hello(h, master)
  C.send(h, dumps{ op = "hello", pid = os.getpid(), host = mpi.get_processor_name() }, master, CTRL)
end

-- One task's outcome as bytes; an outcome that cannot travel says so.
local function result_bytes(id, r)
  r[0] = id
  local ok, bytes = pcall(dumps, r)
  if ok then return bytes end
  local text = tostring(bytes)
  if not r[1] then text = tostring(type(r[2]) == "table" and (r[2]._string or r[2]) or r[2]) end
  return dumps{ [0] = id, false, { _string = text,
    _tb = "(the task's " .. (r[1] and "result" or "error") .. " could not be sent back)" }, n = 2 }
end

--[[ Serves the executors of the master rank on comm. A worker of
mpiexec's world serves one executor after another until "exit"; a
spawned worker, or one of an MPICommExecutor, serves one ("once"). ]]
local function serve(comm, master, once)
  local h = comm._h
  hello(h, master)
  while true do
    local msg = loads((C.recv(h, master, CTRL)))
    if msg.op == "exit" then return end
    local tracing = false
    if msg.trace and not gil.tracing() then
      tracing = pcall(gil.trace_start, ("%s-worker%d.json"):format(msg.trace, comm.rank))
    end
    local ok, err = prepare(msg)
    local what = "Exception while a worker ran the main script " .. tostring(msg.main) .. ":"
    if ok and msg.initializer ~= nil then
      what = "Exception in initializer:"
      ok, err = xpcall(msg.initializer, function(e) return debug.traceback(tostring(e), 2) end,
                       unpack(msg.initargs, 1, msg.initargs.n or #msg.initargs))
    end
    C.send(h, dumps{ op = "ready", ok = ok, err = err and tostring(err), what = what }, master, CTRL)
    local fns, ended = {}, nil
    while true do
      local bytes, _, tag = C.recv(h, master, ANY_TAG)
      if tag == CTRL then                              -- stop (or abandon)
        ended = loads(bytes).op
        break
      end
      if ok then                                       -- a failed worker drops its tasks
        local m = loads(bytes)
        local fnid, fn = m[2], m[3]
        if fn ~= nil then fns[fnid] = fn end
        C.send(h, result_bytes(m[1], run_task(fns[fnid], "call", m[4])), master, RESULT)
      end
    end
    if tracing then pcall(gil.trace_stop) end
    if once or ended == "abandon" then return ended end
  end
end

-- The executor ---------------------------------------------------------------------------

local live = setmetatable({}, { __mode = "k" })   -- executors not shut down
local world_pool                                   -- rank 0 of `-m mpi.futures`

local MPIPoolExecutor = futures.Executor:extend("mpi.futures.MPIPoolExecutor")
M.MPIPoolExecutor = MPIPoolExecutor

-- Collects each worker's hello: its pid and host, to watch it.
local function meet(comm, ranks)
  local h, me = comm._h, mpi.get_processor_name()
  local workers, byrank = {}, {}
  for i, r in ipairs(ranks) do
    local w = { rank = r, n = 0, fns = {}, tasks = {} }
    workers[i], byrank[r] = w, w
  end
  for _ = 1, #ranks do
    local bytes, src = C.recv(h, ANY_SOURCE, CTRL)
    local msg, w = loads(bytes), byrank[src]
    w.pid, w.host = msg.pid, msg.host
    if msg.host == me then w.pidfd = _mp.pidfd(msg.pid) or false end
  end
  return workers, byrank
end

local main_script = require("multiprocessing._util").main_script

local ARGS = { "max_workers", "initializer", "initargs", "gilua", "gilua_args", "mpi_info",
               "main", fname = "MPIPoolExecutor" }

function MPIPoolExecutor:init(...)
  local n, initializer, initargs, exe, exe_args, info, main = args.get(ARGS, ...)
  local fname = "MPIPoolExecutor"
  if bootstrapping then error(RuntimeError(BOOTSTRAP_MSG), 3) end
  if n ~= nil then
    n = args.check(n, "integer", fname, "max_workers")
    if n <= 0 then error(ValueError("max_workers must be greater than 0"), 3) end
  end
  if initializer ~= nil then args.check(initializer, "callable", fname, "initializer") end
  if initargs ~= nil then args.check(initargs, "table", fname, "initargs") end
  if exe ~= nil then args.check(exe, "string", fname, "gilua") end
  if exe_args ~= nil then args.check(exe_args, "table", fname, "gilua_args") end
  if info ~= nil then args.check(info, "table", fname, "mpi_info") end
  local opts = { initializer = initializer, initargs = initargs, main = main }
  if world_pool then
    if world_pool.busy then
      error(RuntimeError("MPIPoolExecutor(): the workers that mpiexec started serve one " ..
                         "executor at a time (shut the other one down first)"), 3)
    end
    local avail = #world_pool.workers
    if n and n > avail then
      error(ValueError(("MPIPoolExecutor(): max_workers is %d but mpiexec started %d workers")
                       :format(n, avail)), 3)
    end
    local ws = {}
    for i = 1, n or avail do ws[i] = world_pool.workers[i] end
    world_pool.busy = true
    self:_start(world_pool.comm, ws, opts, "world")
    return
  end
  n = n or _mp.cpu_count() or 1
  local argv = { "-m", "mpi.futures" }
  for _, a in ipairs(exe_args or {}) do argv[#argv + 1] = tostring(a) end
  local comm = mpi.COMM_SELF:spawn(exe or _mp.executable() or "gilua", argv, n, info)
  local ranks = {}
  for r = 0, n - 1 do ranks[#ranks + 1] = r end
  local ws = meet(comm, ranks)
  self:_start(comm, ws, opts, "spawn")
end

-- Starts serving: tells the workers what they need, starts the manager.
function MPIPoolExecutor:_start(comm, workers, opts, mode)
  self._comm, self._h, self._mode = comm, comm._h, mode
  self._workers, self._byrank = workers, {}
  for _, w in ipairs(workers) do
    self._byrank[w.rank] = w
    w.n, w.fns, w.tasks, w.ready = 0, {}, {}, false
  end
  self._max_workers, self.num_workers = #workers, #workers
  self._lock = threading.Lock()
  self._pending, self._phead, self._ptail = {}, 1, 0
  self._inflight = {}                  -- id -> {future, worker}
  self._sends = {}                     -- isend requests not known complete
  self._nextid, self._nextfn = 0, 0
  self._fnids = setmetatable({}, { __mode = "k" })
  self._waker = C.waker()
  self._state = "run"
  local trace = gil.trace_path()
  local init = dumps{ op = "init", main = opts.main ~= false and main_script() or nil,
    arg = type(arg) == "table" and { table.unpack(arg, 0, #arg) } or {},
    path = package.path, cpath = package.cpath,
    initializer = opts.initializer, initargs = opts.initargs or { n = 0 },
    trace = trace and (trace:gsub("%.[%w]+$", "")) or nil }
  for _, w in ipairs(workers) do
    self._sends[#self._sends + 1] = C.isend(self._h, init, w.rank, CTRL)
  end
  live[self] = true
  local me = self
  self._manager = threading.Thread{ name = "MPIPoolExecutor-manager", daemon = true,
    target = function() me:_manage() end }
  self._manager:start()
end

-- The worker with the most room, or nil.
function MPIPoolExecutor:_room()
  local best
  for _, w in ipairs(self._workers) do
    if w.n < DEPTH and (best == nil or w.n < best.n) then best = w end
  end
  return best
end

-- Hands queued tasks to workers with room. Only the manager runs this.
function MPIPoolExecutor:_dispatch()
  local lock = self._lock
  while not self._broken do
    lock:acquire()
    local w = self._phead <= self._ptail and self:_room()
    if not w then lock:release(); return end
    local task = self._pending[self._phead]
    self._pending[self._phead] = nil
    self._phead = self._phead + 1
    lock:release()
    local f = task.future
    if f:set_running_or_notify_cancel() then
      local id = self._nextid + 1
      self._nextid = id
      local fnid = self._fnids[task.fn]
      if fnid == nil then
        fnid = self._nextfn + 1
        self._nextfn = fnid
        self._fnids[task.fn] = fnid
      end
      local fn = (not w.fns[fnid]) and task.fn or nil
      local ok, bytes = pcall(dumps, { id, fnid, fn, task.args })
      if ok then
        if fn then w.fns[fnid] = true end
        w.n = w.n + 1
        w.tasks[id] = true
        self._inflight[id] = { f, w }
        self._sends[#self._sends + 1] = C.isend(self._h, bytes, w.rank, TASK)
      else
        -- the task cannot travel: it fails, the worker is fine
        f:set_exception(bytes, type(bytes) == "table" and bytes.traceback or nil)
      end
    end
  end
end

function MPIPoolExecutor:_handle(bytes, src, tag)
  local w = self._byrank[src]
  if tag == RESULT then
    local r = loads(bytes)
    local id = r[0]
    local entry = self._inflight[id]
    if entry == nil then return end
    self._inflight[id] = nil
    w.n = w.n - 1
    w.tasks[id] = nil
    finish(entry[1], r[1], r[2], r)
  elseif tag == CTRL then
    local msg = loads(bytes)
    if msg.op == "ready" then
      w.ready = true
      if not msg.ok then
        io.stderr:write(msg.what, "\n", tostring(msg.err), "\n")
        self:_break("A worker initializer failed, the MPI pool is not usable anymore")
      end
    end
  end
end

-- Sends finished (their buffers go).
function MPIPoolExecutor:_reap()
  local sends, j = self._sends, 0
  for i = 1, #sends do
    local r = sends[i]
    sends[i] = nil
    if not r:test() then
      j = j + 1
      sends[j] = r
    end
  end
end

-- True when every worker on this machine is still alive.
function MPIPoolExecutor:_alive()
  local fds, by = {}, {}
  for _, w in ipairs(self._workers) do
    if w.pidfd then
      fds[#fds + 1] = w.pidfd
      by[w.pidfd] = w
    elseif w.pidfd == false and not _mp.kill(w.pid, 0) then
      return false, w
    end
  end
  if #fds == 0 then return true end
  local ready = _mp.wait(fds, 0)
  if #ready > 0 then return false, by[ready[1]] end
  return true
end

--[[ Broken: every future not done fails with BrokenExecutor, and so does
submit from now on. ]]
function MPIPoolExecutor:_break(msg)
  if self._broken then return end
  self._broken = msg
  local lock = self._lock
  lock:acquire()
  local pend = {}
  for i = self._phead, self._ptail do pend[#pend + 1] = self._pending[i] end
  self._pending, self._phead, self._ptail = {}, 1, 0
  lock:release()
  local lost = self._inflight
  self._inflight = {}
  for _, entry in next, lost do
    if not entry[1]:done() then entry[1]:set_exception(BrokenExecutor(msg)) end
  end
  for _, task in ipairs(pend) do
    if task.future:set_running_or_notify_cancel() then
      task.future:set_exception(BrokenExecutor(msg))
    end
  end
end

function MPIPoolExecutor:_manage()
  local h = self._h
  local checked = monotonic()
  while true do
    self:_dispatch()
    if self._broken then break end
    if self._state ~= "run" and self._phead > self._ptail and next(self._inflight) == nil then break end
    local bytes, src, tag = C.recv(h, ANY_SOURCE, ANY_TAG, LIVENESS, self._waker)
    while bytes do
      self:_handle(bytes, src, tag)
      bytes, src, tag = C.recv(h, ANY_SOURCE, ANY_TAG, 0)
    end
    if #self._sends > 0 then self:_reap() end
    local now = monotonic()
    if now - checked >= LIVENESS then
      checked = now
      local alive, dead = self:_alive()
      if not alive then
        self._dead = dead
        self:_break(("A process in the MPI pool was terminated abruptly while the future was running " ..
                     "or pending (worker %d, pid %d)"):format(dead.rank, dead.pid))
      end
    end
  end
  self:_finish()
end

-- The end: the workers are told to stop, and the communicator goes.
function MPIPoolExecutor:_finish()
  local h = self._h
  local stop = dumps{ op = self._dead and "abandon" or "stop" }
  for _, w in ipairs(self._workers) do
    if w ~= self._dead then
      self._sends[#self._sends + 1] = C.isend(h, stop, w.rank, CTRL)
    end
  end
  if self._dead then
    -- a dead process never completes a send or a disconnect: let go
    self._sends = {}
    if self._mode ~= "world" then pcall(self._comm.free, self._comm) end
  else
    for _, r in ipairs(self._sends) do r:test(true) end
    self._sends = {}
    -- the ready answers still in the queue
    for _, w in ipairs(self._workers) do
      while not w.ready do
        local bytes, src, tag = C.recv(h, w.rank, CTRL)
        self:_handle(bytes, src, tag)
      end
    end
    if self._mode == "spawn" then self._comm:disconnect()
    elseif self._mode == "comm" then self._comm:free() end
  end
  if self._mode == "world" then
    world_pool.busy = false
  else
    for _, w in ipairs(self._workers) do
      if w.pidfd then _mp.close(w.pidfd); w.pidfd = nil end
    end
  end
  live[self] = nil
end

function MPIPoolExecutor:submit(fn, ...)
  args.check(fn, "callable", "MPIPoolExecutor.submit", "fn")
  if self._broken then error(BrokenExecutor(self._broken), 2) end
  local f = futures.Future()
  local lock = self._lock
  lock:acquire()
  if self._state ~= "run" then
    lock:release()
    if self._broken then error(BrokenExecutor(self._broken), 2) end
    error(RuntimeError("cannot schedule new futures after shutdown"), 2)
  end
  local tail = self._ptail + 1
  self._ptail = tail
  self._pending[tail] = { future = f, fn = fn, args = pack(...) }
  lock:release()
  self._waker:set()
  return f
end

-- mpi4py starts its workers on first use; these are running already.
function MPIPoolExecutor:bootup() return self end

local SHUTDOWN_ARGS = { "wait", "cancel_futures", fname = "Executor.shutdown" }

function MPIPoolExecutor:shutdown(...)
  local wait, cancel = args.get(SHUTDOWN_ARGS, ...)
  local lock = self._lock
  if lock == nil then return end                    -- never started
  lock:acquire()
  self._state = "shutdown"
  local dropped = {}
  if cancel then
    for i = self._phead, self._ptail do dropped[#dropped + 1] = self._pending[i] end
    self._pending, self._phead, self._ptail = {}, 1, 0
  end
  lock:release()
  for _, t in ipairs(dropped) do t.future:cancel() end
  self._waker:set()
  if args.bool(wait, true) and self._manager ~= threading.current_thread() then
    self._manager:join()
  end
end

-- map(fn, xs, ..., {timeout =, chunksize =, unordered =}): with unordered,
-- the results come in the order the tasks finish.
local function map_opts(t)
  if not args.is_options(t) or t[1] ~= nil then return nil end
  for k in next, t do
    if k ~= "timeout" and k ~= "chunksize" and k ~= "unordered" and k ~= "buffersize" then return nil end
  end
  return t
end

local function unordered(fs, timeout)
  local out, n = {}, 0
  local ok, err = pcall(function()
    for f in futures.as_completed(fs, timeout) do
      n = n + 1
      out[n] = f:result()
    end
  end)
  if not ok then
    for _, f in ipairs(fs) do f:cancel() end
    error(err, 0)
  end
  return out
end

local function check_timeout(t, fname)
  if t ~= nil then args.timeout(t, fname) end
  return t
end

function MPIPoolExecutor:map(fn, ...)
  local n = select("#", ...)
  local opts = n >= 2 and map_opts((select(n, ...))) or nil
  if opts == nil or not opts.unordered then
    if opts and opts.unordered ~= nil then
      local rest = { ... }
      rest[n] = { timeout = opts.timeout, chunksize = opts.chunksize }
      return futures.Executor.map(self, fn, unpack(rest, 1, n))
    end
    return futures.Executor.map(self, fn, ...)
  end
  args.check(fn, "callable", "MPIPoolExecutor.map", "fn")
  local timeout = check_timeout(opts.timeout, "MPIPoolExecutor.map")
  local arrays = { ... }
  local len = math.huge
  for i = 1, n - 1 do
    local a = args.check(arrays[i], "table", "MPIPoolExecutor.map", "array " .. i)
    if #a < len then len = #a end
  end
  if n == 1 then error(TypeError("MPIPoolExecutor.map(): at least one array is needed"), 2) end
  local fs, row = {}, {}
  for j = 1, len do
    for i = 1, n - 1 do row[i] = arrays[i][j] end
    fs[j] = self:submit(fn, unpack(row, 1, n - 1))
  end
  return unordered(fs, timeout)
end

--[[ starmap(fn, rows, [{timeout =, unordered =}]): fn(unpack(row)) for
each row of arguments, as itertools.starmap. ]]
function MPIPoolExecutor:starmap(fn, rows, opts)
  args.check(fn, "callable", "MPIPoolExecutor.starmap", "fn")
  args.check(rows, "table", "MPIPoolExecutor.starmap", "iterable")
  if opts ~= nil and map_opts(opts) == nil then
    error(TypeError("MPIPoolExecutor.starmap(): options are timeout, chunksize and unordered"), 2)
  end
  opts = opts or {}
  local timeout = check_timeout(opts.timeout, "MPIPoolExecutor.starmap")
  local fs = {}
  for j = 1, #rows do
    local row = args.check(rows[j], "table", "MPIPoolExecutor.starmap", "row " .. j)
    fs[j] = self:submit(fn, unpack(row, 1, row.n or #row))
  end
  if opts.unordered then return unordered(fs, timeout) end
  local out = {}
  local deadline = timeout and monotonic() + timeout
  for j = 1, #fs do
    local ok, r
    if deadline then
      local left = deadline - monotonic()
      ok, r = pcall(fs[j].result, fs[j], left > 0 and left or 0)
    else
      ok, r = pcall(fs[j].result, fs[j])
    end
    if not ok then
      for k = j + 1, #fs do fs[k]:cancel() end
      error(r, 0)
    end
    out[j] = r
  end
  return out
end

function MPIPoolExecutor:__tostring()
  return ("<mpi.futures.MPIPoolExecutor max_workers=%d%s%s>"):format(self._max_workers or 0,
    self._broken and " broken" or "", self._state == "shutdown" and " shutdown" or "")
end

-- Program exit: the queued work is done first, as Python's executors do.
local function shutdown_all()
  for ex in next, live do pcall(ex.shutdown, ex, true) end
end
threading._register_atexit(shutdown_all)

-- MPICommExecutor --------------------------------------------------------------------------

--[[ MPICommExecutor(comm, root): every rank of comm calls it. The root
gets an executor whose workers are the other ranks; they serve it until
it is shut down, then get nil. A communicator of one gets a thread pool
of one worker (as mpi4py). ]]
function M.MPICommExecutor(comm, root)
  comm = comm == nil and mpi.COMM_WORLD or comm
  if not mpi.Intracomm:is(comm) then
    error(TypeError("MPICommExecutor(): 'comm' must be an intracommunicator, not " .. args.typename(comm)), 2)
  end
  root = root == nil and 0 or args.check(root, "integer", "MPICommExecutor", "root")
  if root < 0 or root >= comm.size then
    error(ValueError(("MPICommExecutor(): 'root' must be a rank from 0 to %d, not %d"):format(comm.size - 1, root)), 2)
  end
  if bootstrapping then error(RuntimeError(BOOTSTRAP_MSG), 2) end
  if comm.size == 1 then return futures.ThreadPoolExecutor{ max_workers = 1 } end
  local c = comm:dup()
  if c.rank ~= root then
    if serve(c, root, true) ~= "abandon" then c:free() end
    return nil
  end
  local ranks = {}
  for r = 0, c.size - 1 do if r ~= root then ranks[#ranks + 1] = r end end
  local ex = setmetatable({}, MPIPoolExecutor)
  -- the workers run this very program: nothing to load
  ex:_start(c, (meet(c, ranks)), { main = false }, "comm")
  return ex
end

-- gilua -m mpi.futures -----------------------------------------------------------------------

--[[ `gilua -m mpi.futures script.lua args` under mpiexec: rank 0 runs the
script, whose MPIPoolExecutor uses the other ranks as workers; they serve
until the script ends. Started by MPIPoolExecutor (a parent exists), this
is a worker. ]]
function M._main()
  local parent = mpi.get_parent()
  if parent then
    -- abandoned (a fellow worker died), the executor has let go of this
    -- communicator and will not disconnect
    if serve(parent, 0, true) ~= "abandon" then parent:disconnect() end
    return
  end
  local world = mpi.COMM_WORLD
  local comm = world:dup()
  if comm.rank ~= 0 then
    serve(comm, 0, false)
    return
  end
  local ranks = {}
  for r = 1, comm.size - 1 do ranks[#ranks + 1] = r end
  world_pool = { comm = comm, workers = (meet(comm, ranks)), busy = false }
  local script = arg[1]
  local ok, err = true, nil
  if script ~= nil then
    local a = {}
    for i = 1, #arg do a[i - 1] = arg[i] end
    _G.arg = a
    local chunk
    chunk, err = loadfile(script ~= "-" and script or nil)
    if chunk then
      ok, err = xpcall(chunk, function(e)
        if type(e) == "table" then return e end
        return debug.traceback(tostring(e), 2)
      end, unpack(a, 1, #a))
    else
      ok = false
    end
  end
  shutdown_all()
  local bye = dumps{ op = "exit" }
  for _, w in ipairs(world_pool.workers) do C.send(comm._h, bye, w.rank, CTRL) end
  if not ok then error(err, 0) end
end

return M
