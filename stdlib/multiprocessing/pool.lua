--[[
multiprocessing.pool: Pool, and the worker engine that
concurrent.futures.ProcessPoolExecutor shares.

The engine keeps its workers each behind its own duplex Pipe, so the parent
always knows which tasks a worker holds: a worker that dies fails exactly
those (Pool: the task's result raises WorkerLostError and a new worker
takes its place; executor: BrokenProcessPool for every pending future)
instead of hanging. Two threads of the parent do the talking, as in
Python's Pool: a sender that hands queued tasks to workers with room (at
most DEPTH each, so the pipe never starves), and a receiver that waits on
every worker's pipe and pidfd at once and settles results. A function is
sent to a worker once and named by a number after that (as Python sends
functions by reference).
]]

local mp = require "multiprocessing"
local util = require "multiprocessing._util"
local _mp = require "_multiprocessing"
local Object = require "gilua.class"
local exc = require "gilua.exceptions"
local args = require "gilua.args"
local threading = require "threading"

local ValueError = exc.ValueError
local unpack, pack = table.unpack, table.pack
local type, error, tostring, pcall, xpcall, next =
  type, error, tostring, pcall, xpcall, next
local is_options = args.is_options

local M = {}

M.WorkerLostError = mp.ProcessError:extend("multiprocessing.pool.WorkerLostError")
local WorkerLostError = M.WorkerLostError
M.TimeoutError = mp.TimeoutError

local DEPTH = 4

-- The worker side ------------------------------------------------------------------

local function traced(e)
  if type(e) == "table" and exc.BaseException:is(e) then
    local _ = e.traceback             -- formatted here, where it happened
    return e
  end
  return { _string = tostring(e), _tb = debug.traceback(tostring(e), 2) }
end

local function run_task(fn, kind, a)
  if kind == "call" then
    return pack(xpcall(fn, traced, unpack(a, 1, a.n or #a)))
  end
  local out = {}
  for i = 1, a.n or #a do
    local ok, r
    if kind == "star" then
      local row = a[i]
      ok, r = xpcall(fn, traced, unpack(row, 1, row.n or #row))
    else
      ok, r = xpcall(fn, traced, a[i])
    end
    if not ok then return pack(false, r) end
    out[i] = r
  end
  return pack(true, out)
end

local function worker_main(conn, initializer, initargs, maxtasks)
  if initializer ~= nil then
    initializer(unpack(initargs, 1, initargs.n or #initargs))
  end
  local fns, done = {}, 0
  while maxtasks == nil or done < maxtasks do
    local ok, msg = pcall(conn.recv, conn)
    if not ok or msg == nil then break end
    local id, fnid, fn, kind, a = msg[1], msg[2], msg[3], msg[4], msg[5]
    if fn ~= nil then fns[fnid] = fn end
    local r = run_task(fns[fnid], kind, a)
    r[0] = id
    local sent, err = pcall(conn.send, conn, r)
    if not sent then
      -- a result or an error that cannot travel: say so instead
      local msgtext = tostring(err)
      if not r[1] then msgtext = tostring(type(r[2]) == "table" and (r[2]._string or r[2]) or r[2]) end
      pcall(conn.send, conn, { [0] = id, false, { _string = msgtext,
        _tb = "(the task's " .. (r[1] and "result" or "error") .. " could not be sent back)" }, n = 2 })
    end
    done = done + 1
  end
end

-- The engine -------------------------------------------------------------------------

local Engine = Object:extend("multiprocessing.pool._Engine")
M._Engine = Engine

--[[ opts: processes, initializer, initargs, maxtasksperchild, on_death
("replace" or "break"), broken (called once when broken), name. ]]
function Engine:init(opts)
  self._n = opts.processes
  self._initializer, self._initargs = opts.initializer, opts.initargs or { n = 0 }
  self._maxtasks = opts.maxtasksperchild
  self._on_death = opts.on_death or "replace"
  self._on_broken = opts.broken
  self._cv = threading.Condition(threading.Lock())
  self._pending, self._phead, self._ptail = {}, 1, 0
  self._workers = {}
  self._tasks = {}             -- id -> task (sent, not settled)
  self._nextid = 0
  self._fnids = setmetatable({}, { __mode = "k" })
  self._nextfn = 0
  self._state = "run"          -- run, close, terminate, broken
  self._name = opts.name or "Pool"
  self._method = opts.context and opts.context.get_start_method() or nil
  for _ = 1, self._n do self:_spawn() end
  local me = self
  self._sender = threading.Thread{ name = self._name .. "-sender", daemon = true,
    target = function() me:_send_loop() end }
  self._receiver = threading.Thread{ name = self._name .. "-receiver", daemon = true,
    target = function() me:_recv_loop() end }
  self._sender:start()
  self._receiver:start()
end

-- A worker started by spawn: the target travels by name, its pipe as an
-- inherited descriptor.
M._spawned_worker = worker_main
-- a task's outcome as a worker sends it back (mpi.futures' workers too)
M._run_task = run_task

function Engine:_spawn()
  local parent_end, child_end = mp.Pipe()
  local init, iargs, maxtasks = self._initializer, self._initargs, self._maxtasks
  local engine = self
  local method = self._method or mp.get_start_method()
  local p
  if method == "spawn" then
    p = mp.get_context("spawn").Process{ target = M._spawned_worker,
      args = { child_end, init, iargs, maxtasks }, daemon = true }
  else p = mp.get_context("fork").Process{ target = function()
    parent_end:close()
    -- the other workers' pipes and pidfds came with the fork
    for _, other in next, engine._workers do
      pcall(other.conn.close, other.conn)
      if other.pidfd then _mp.close(other.pidfd); other.pidfd = nil end
    end
    worker_main(child_end, init, iargs, maxtasks)
  end, daemon = true } end
  p:start()
  child_end:close()
  local w = { proc = p, conn = parent_end, fd = parent_end:fileno(), pidfd = p.sentinel,
              n = 0, sent = 0, fns = {}, tasks = {} }
  self._workers[#self._workers + 1] = w
  return w
end

-- Queues a task: {fn =, kind =, args =, done = function(ok, value, tb)}.
function Engine:submit(task)
  local cv = self._cv
  cv:acquire()
  if self._state ~= "run" then
    local st = self._state
    cv:release()
    return false, st
  end
  self._ptail = self._ptail + 1
  self._pending[self._ptail] = task
  cv:notify_all()
  cv:release()
  return true
end

-- The worker with the most room, or nil.
function Engine:_room()
  local best
  for _, w in next, self._workers do
    if not w.dead and w.n < DEPTH and (self._maxtasks == nil or w.sent < self._maxtasks)
       and (best == nil or w.n < best.n) then
      best = w
    end
  end
  return best
end

function Engine:_send_loop()
  local cv = self._cv
  while true do
    cv:acquire()
    local w
    while true do
      if self._state == "terminate" or self._state == "broken" then cv:release(); return end
      if self._phead > self._ptail then
        if self._state == "close" then
          -- no more work: the workers end when their pipe says so. The
          -- list is copied first: the receiver removes workers as they end.
          local ws = {}
          for _, wk in next, self._workers do ws[#ws + 1] = wk end
          cv:release()
          for i = 1, #ws do pcall(ws[i].conn.send, ws[i].conn, nil) end
          return
        end
      else
        w = self:_room()
        if w then break end
      end
      cv:wait(0.5)
    end
    local task = self._pending[self._phead]
    self._pending[self._phead] = nil
    self._phead = self._phead + 1
    if task.start and not task.start() then
      cv:release()
    else
      self._nextid = self._nextid + 1
      local id = self._nextid
      task.id = id
      w.n, w.sent = w.n + 1, w.sent + 1
      w.tasks[id] = task
      self._tasks[id] = w
      local fnid = self._fnids[task.fn]
      if fnid == nil then
        self._nextfn = self._nextfn + 1
        fnid = self._nextfn
        self._fnids[task.fn] = fnid
      end
      local fn = nil
      if not w.fns[fnid] then fn = task.fn end
      cv:release()
      local ok, err = pcall(w.conn.send, w.conn, { id, fnid, fn, task.kind, task.args })
      if ok then
        if fn then w.fns[fnid] = true end
      elseif not exc.OSError:is(err) then
        -- the task could not be serialized: it fails, the worker is fine
        cv:acquire()
        w.n = w.n - 1
        w.sent = w.sent - 1
        w.tasks[id] = nil
        self._tasks[id] = nil
        cv:release()
        task.done(false, err)
      end
    end
  end
end

function Engine:_worker_gone(w)
  local cv = self._cv
  cv:acquire()
  if w.dead then cv:release(); return end
  w.dead = true
  for i, x in next, self._workers do
    if x == w then table.remove(self._workers, i); break end
  end
  local lost = w.tasks
  w.tasks = {}
  for id in next, lost do self._tasks[id] = nil end
  w.conn:close()
  w.proc:join(1)
  if w.proc.exitcode == nil then w.proc:kill(); w.proc:join() end
  local code = w.proc.exitcode
  local abrupt = next(lost) ~= nil or (code ~= 0)
  local broken = false
  if self._state == "run" or self._state == "close" then
    if abrupt and self._on_death == "break" then
      self._state = "broken"
      broken = true
    elseif self._state == "run" or (self._phead <= self._ptail) then
      self:_spawn()
    end
  end
  cv:notify_all()
  cv:release()
  for _, task in next, lost do
    task.done(false, WorkerLostError(("worker process (pid %d) exited with code %d while running a task")
      :format(w.proc.pid, code or 0)))
  end
  if broken and self._on_broken then self._on_broken(code) end
end

-- A connection that a terminate() closed meanwhile has nothing to read.
local function polled(conn)
  local ok, ready = pcall(conn.poll, conn, 0)
  return ok and ready
end

function Engine:_recv_loop()
  local cv = self._cv
  while true do
    cv:acquire()
    local ws, fds, by = {}, {}, {}
    for _, w in next, self._workers do
      ws[#ws + 1] = w
      fds[#fds + 1] = w.fd
      by[w.fd] = w
      if w.pidfd then fds[#fds + 1] = w.pidfd; by[w.pidfd] = w end
    end
    local state = self._state
    cv:release()
    if #ws == 0 and state ~= "run" then return end
    if state == "terminate" or state == "broken" then return end
    local ready = _mp.wait(fds, 0.2)
    local seen = {}
    for i = 1, #ready do
      local fd = ready[i]
      local w = by[fd]
      if w and not seen[w] then
        seen[w] = true
        -- read all whole results first: a worker may have died after sending
        while not w.dead and polled(w.conn) do
          local ok, r = pcall(w.conn.recv, w.conn)
          if not ok then self:_worker_gone(w); break end
          local id = r[0]
          cv:acquire()
          local task = w.tasks[id]
          w.tasks[id] = nil
          self._tasks[id] = nil
          w.n = w.n - 1
          cv:notify_all()
          cv:release()
          if task then task.done(r[1], r[2], r) end
        end
        if not w.dead and fd == w.pidfd then self:_worker_gone(w) end
      end
    end
  end
end

function Engine:close()
  local cv = self._cv
  cv:acquire()
  if self._state == "run" then self._state = "close" end
  cv:notify_all()
  cv:release()
end

-- Kills every worker; returns the tasks that never ran or never finished.
function Engine:terminate()
  local cv = self._cv
  cv:acquire()
  local was = self._state
  if was ~= "broken" then self._state = "terminate" end
  local pend = {}
  for i = self._phead, self._ptail do pend[#pend + 1] = self._pending[i] end
  self._pending, self._phead, self._ptail = {}, 1, 0
  local ws = {}
  for _, w in next, self._workers do ws[#ws + 1] = w end
  cv:notify_all()
  cv:release()
  for _, w in next, ws do w.proc:terminate() end
  for _, w in next, ws do
    w.proc:join(1)
    if w.proc.exitcode == nil then w.proc:kill(); w.proc:join() end
  end
  -- The receiver may be reading a worker's connection: it sees the new
  -- state within its 0.2 s wait and leaves; only then are the connections
  -- closed (closing a descriptor another thread reads is a race, and its
  -- number could be reused under that reader).
  local rt = self._receiver
  if rt and rt ~= threading.current_thread() and rt:is_alive() then rt:join(5) end
  for _, w in next, ws do w.conn:close() end
  for _, w in next, ws do
    for _, t in next, w.tasks do pend[#pend + 1] = t end
    w.tasks = {}
  end
  return pend
end

function Engine:join()
  if self._state == "run" then error(ValueError("Pool is still running"), 3) end
  self._sender:join()
  self._receiver:join()
  local ws = {}
  for _, w in next, self._workers do ws[#ws + 1] = w end
  for _, w in next, ws do w.proc:join() end
end

-- Results --------------------------------------------------------------------------

--[[ An error from a worker is raised in the parent as it was raised
there: exception objects keep the worker's traceback; a string error
becomes the message followed by the worker's traceback. ]]
local function raise_remote(e, level)
  if type(e) == "table" and e._string then
    error(e._string .. "\n[in the worker process]\n" .. tostring(e._tb), level + 1)
  end
  error(e, 0)
end
M._raise_remote = raise_remote

local ApplyResult = Object:extend("multiprocessing.pool.ApplyResult")
M.ApplyResult = ApplyResult
M.AsyncResult = ApplyResult

function ApplyResult:init(callback, error_callback)
  self._event = threading.Event()
  self._callback, self._error_callback = callback, error_callback
end

function ApplyResult:_set(ok, value)
  self._ok, self._value = ok, value
  if ok and self._callback then pcall(self._callback, value)
  elseif not ok and self._error_callback then pcall(self._error_callback, value) end
  self._event:set()
end

function ApplyResult:ready() return self._event:is_set() end

function ApplyResult:successful()
  if not self:ready() then error(ValueError(tostring(self) .. " not ready"), 2) end
  return self._ok
end

function ApplyResult:wait(timeout)
  if is_options(timeout) then timeout = timeout.timeout end
  self._event:wait(args.timeout(timeout, "AsyncResult.wait"))
end

function ApplyResult:get(timeout)
  if is_options(timeout) then timeout = timeout.timeout end
  if not self._event:wait(args.timeout(timeout, "AsyncResult.get")) then error(mp.TimeoutError(), 2) end
  if self._ok then
    local v = self._value
    if self._multi then return unpack(v, 1, v.n) end
    return v
  end
  raise_remote(self._value, 2)
end

-- Pool -------------------------------------------------------------------------------

local Pool = Object:extend("multiprocessing.pool.Pool")
M.Pool = Pool

local live = setmetatable({}, { __mode = "k" })   -- pools not collected yet
local exiting = false                             -- see Pool:__gc

local POOL_ARGS = { "processes", "initializer", "initargs", "maxtasksperchild",
                    "context", fname = "Pool" }

-- No more processes than the system can number.
local function pid_max()
  local f = io.open("/proc/sys/kernel/pid_max", "r")
  local n = f and tonumber(f:read("l"))
  if f then f:close() end
  return n or 32768
end

function Pool:init(...)
  local processes, initializer, initargs, maxtasks, context = args.get(POOL_ARGS, ...)
  if processes == nil then processes = _mp.cpu_count() or 1 end
  processes = util.check_int(processes, "Pool", "processes")
  if processes < 1 then
    error(ValueError("Pool(): Number of processes must be at least 1, not " .. processes), 3)
  end
  local most = pid_max()
  if processes > most then
    error(ValueError(("Pool(): argument 'processes' is %d, more than the system can run " ..
                      "(kernel.pid_max = %d)"):format(processes, most)), 3)
  end
  if initializer ~= nil then args.check(initializer, "callable", "Pool", "initializer") end
  if initargs ~= nil then args.check(initargs, "table", "Pool", "initargs") end
  if maxtasks ~= nil and (math.type(maxtasks) ~= "integer" or maxtasks < 1) then
    error(ValueError("Pool(): maxtasksperchild must be a positive integer or nil, not " ..
                     tostring(maxtasks)), 3)
  end
  if context ~= nil and not (type(context) == "table" and args.callable(context.get_start_method)) then
    error(TypeError("Pool(): argument 'context' must be a context (get_context()), not " ..
                    args.typename(context)), 3)
  end
  self._processes = processes
  self._pid = os.getpid()
  live[self] = true
  self._engine = Engine{ processes = processes, initializer = initializer,
                         initargs = initargs, maxtasksperchild = maxtasks,
                         context = context or self._context }
end

local function check_running(self)
  local st = self._engine._state
  if st ~= "run" then error(ValueError("Pool not running"), 3) end
end

local function submit(self, task)
  local ok = self._engine:submit(task)
  if not ok then error(ValueError("Pool not running"), 3) end
end

local APPLY_OPTS = { args = true, kwds = true, callback = true, error_callback = true }

local function apply_args(fn, a, c, ec)
  if is_options(a) and next(a) ~= nil then
    local all = true
    for k in next, a do if not APPLY_OPTS[k] then all = false end end
    if all then return fn, a.args, a.callback, a.error_callback end
  end
  if is_options(c) then return fn, a, c.callback, c.error_callback end
  return fn, a, c, ec
end

local function check_callbacks(fname, callback, error_callback)
  if callback ~= nil then args.check(callback, "callable", fname, "callback") end
  if error_callback ~= nil then args.check(error_callback, "callable", fname, "error_callback") end
end

local function apply_async(self, fname, ...)
  local fn, a, callback, error_callback = apply_args(...)
  check_running(self)
  args.check(fn, "callable", fname, "func")
  if a ~= nil then args.check(a, "table", fname, "args") end
  check_callbacks(fname, callback, error_callback)
  a = a or { n = 0 }
  local res = ApplyResult(callback, error_callback)
  res._multi = true
  submit(self, { fn = fn, kind = "call", args = a, done = function(ok, v, r)
    if ok then
      local vals = { n = r.n - 1 }
      for i = 2, r.n do vals[i - 1] = r[i] end
      -- the callback gets the first value, as Python's one result
      res._ok, res._value = true, vals
      if callback then pcall(callback, vals[1]) end
      res._event:set()
    else
      res:_set(false, v)
    end
  end })
  return res
end

function Pool:apply_async(...) return apply_async(self, "Pool.apply_async", ...) end

function Pool:apply(fn, a)
  return apply_async(self, "Pool.apply", fn, a):get()
end

local MapResult = ApplyResult:extend("multiprocessing.pool.MapResult")
M.MapResult = MapResult

local function chunks_of(xs, n, chunksize, nproc)
  if chunksize == nil then
    chunksize = n // (nproc * 4)
    if n % (nproc * 4) ~= 0 then chunksize = chunksize + 1 end
    if chunksize < 1 then chunksize = 1 end
  end
  local out = {}
  for i = 1, n, chunksize do
    local c = { n = 0 }
    for j = i, math.min(i + chunksize - 1, n) do
      c.n = c.n + 1
      c[c.n] = xs[j]
    end
    out[#out + 1] = { first = i, items = c }
  end
  return out
end

-- chunksize: nil (chosen) or an integer from 1 (Python's message).
local function check_chunksize(chunksize, fname)
  if chunksize == nil then return nil end
  chunksize = util.check_int(chunksize, fname, "chunksize")
  if chunksize < 1 then
    error(ValueError(("%s(): Chunksize must be 1+, not %d"):format(fname, chunksize)), 4)
  end
  return chunksize
end

-- The items of an iterable: xs.n of them if set, else #xs.
local function count(xs, fname)
  local n = xs.n
  if n == nil then return #xs end
  if math.type(n) ~= "integer" or n < 0 then
    error(TypeError(("%s(): iterable.n must be a count, not %s"):format(fname, tostring(n))), 4)
  end
  return n
end

local function map_async(self, kind, fn, xs, chunksize, callback, error_callback, fname)
  check_running(self)
  args.check(fn, "callable", fname, "func")
  args.check(xs, "table", fname, "iterable")
  if is_options(chunksize) then
    chunksize, callback, error_callback = chunksize.chunksize, chunksize.callback, chunksize.error_callback
  end
  chunksize = check_chunksize(chunksize, fname)
  check_callbacks(fname, callback, error_callback)
  local n = count(xs, fname)
  if kind == "star" then   -- each item is the table of one call's arguments
    for i = 1, n do
      if type(xs[i]) ~= "table" then
        error(TypeError(("%s(): iterable[%d] must be a table of arguments, not %s")
                        :format(fname, i, args.typename(xs[i]))), 3)
      end
    end
  end
  local res = MapResult(callback, error_callback)
  local results = {}
  local chunks = chunks_of(xs, n, chunksize, self._processes)
  local left = #chunks
  if left == 0 then res:_set(true, results) return res end
  for _, c in next, chunks do
    submit(self, { fn = fn, kind = kind, args = c.items, done = function(ok, v)
      if res._event:is_set() then return end
      if not ok then res:_set(false, v) return end
      for k = 1, c.items.n do results[c.first + k - 1] = v[k] end
      left = left - 1
      if left == 0 then res:_set(true, results) end
    end })
  end
  return res
end

function Pool:map_async(fn, xs, chunksize, callback, error_callback)
  return map_async(self, "map", fn, xs, chunksize, callback, error_callback, "Pool.map_async")
end

function Pool:starmap_async(fn, xs, chunksize, callback, error_callback)
  return map_async(self, "star", fn, xs, chunksize, callback, error_callback, "Pool.starmap_async")
end

function Pool:map(fn, xs, chunksize)
  return map_async(self, "map", fn, xs, chunksize, nil, nil, "Pool.map"):get()
end

function Pool:starmap(fn, xs, chunksize)
  return map_async(self, "star", fn, xs, chunksize, nil, nil, "Pool.starmap"):get()
end

-- imap / imap_unordered: Lua iterators over the results.
local function imap(self, fn, xs, chunksize, ordered, fname)
  check_running(self)
  args.check(fn, "callable", fname, "func")
  args.check(xs, "table", fname, "iterable")
  if is_options(chunksize) then chunksize = chunksize.chunksize end
  chunksize = check_chunksize(chunksize, fname)
  local n = count(xs, fname)
  local cv = threading.Condition(threading.Lock())
  local got, errors = {}, {}
  local order = {}             -- unordered: indexes in arrival order
  for _, c in next, chunks_of(xs, n, chunksize or 1, self._processes) do
    submit(self, { fn = fn, kind = "map", args = c.items, done = function(ok, v)
      cv:acquire()
      for k = 1, c.items.n do
        local i = c.first + k - 1
        if ok then got[i] = { v[k] } else got[i] = false; errors[i] = v end
        order[#order + 1] = i
      end
      cv:notify_all()
      cv:release()
    end })
  end
  local pos = 0
  return function()
    if pos >= n then return nil end
    pos = pos + 1
    cv:acquire()
    local i
    if ordered then
      i = pos
      while got[i] == nil do cv:wait() end
    else
      while order[pos] == nil do cv:wait() end
      i = order[pos]
    end
    local g = got[i]
    cv:release()
    if g == false then raise_remote(errors[i], 2) end
    return g[1]
  end
end

function Pool:imap(fn, xs, chunksize)
  return imap(self, fn, xs, chunksize, true, "Pool.imap")
end

function Pool:imap_unordered(fn, xs, chunksize)
  return imap(self, fn, xs, chunksize, false, "Pool.imap_unordered")
end

function Pool:close() self._engine:close() end

function Pool:terminate()
  local lost = self._engine:terminate()
  for _, t in next, lost do
    pcall(t.done, false, WorkerLostError("the pool was terminated"))
  end
end

function Pool:join() self._engine:join() end

-- `local pool <close> = Pool(4)`: terminate, as Python's `with`.
function Pool:__close() self:terminate() end

-- A pool collected while it still runs ends its workers and threads, as
-- Python's finalizer does (else they would wait for tasks for ever); so
-- does one still running at exit, before multiprocessing joins its
-- children (handlers run last registered first). After that handler, the
-- interpreter is closing: finalizers no longer wait for anything.
local function finalize(self)
  local engine = rawget(self, "_engine")
  -- only in the process that made the pool: a forked child has a copy of
  -- it, whose workers and threads are not its own
  if engine and rawget(self, "_pid") == os.getpid()
     and engine._state ~= "terminate" and engine._state ~= "broken" then
    pcall(Pool.terminate, self)
  end
end

function Pool:__gc()
  if not exiting then finalize(self) end
end

threading._register_atexit(function()
  for pool in next, live do finalize(pool) end
  exiting = true
end)

function Pool:__tostring()
  return ("<multiprocessing.pool.Pool state=%s pool_size=%d>"):format(
    self._engine._state:upper(), self._processes)
end

return M
