--[[
concurrent.interpreters: several interpreters in one process, each with its
own GIL (Python 3.14's module, on the C core _interpreters).

    local interpreters = require "concurrent.interpreters"
    local interp <close> = interpreters.create()
    interp:exec("x = 40")                        -- Lua source, or a function
    print(interp:call(function(a) return x + a end, 2))   -- 42
    local t = interp:call_in_thread(work, 1e7)   -- a threading.Thread, started
    t:join()

An interpreter is a Lua state of its own: its own globals, modules and
threads, and its own GIL, so that CPU-bound code in two interpreters runs
in parallel, in the threads of one process. exec and call run in the
calling thread: it lets its own GIL go, takes the other interpreter's, runs
there and comes back (and the interpreter it left goes on running its other
threads meanwhile).

What crosses is copied, by the serializer that multiprocessing uses: nil,
booleans, numbers, strings, tables (cycles and shared references kept),
functions with their upvalues (a function's globals are the globals of the
interpreter it runs in), exception objects, module values by name.
Queues made by create_queue cross as themselves. A value that cannot cross
(a coroutine, a C object) raises NotShareableError, naming it and where it
sits.

Where Lua and Python differ:
  * call returns every value the function returned, copied back.
  * exec takes Lua source or a function (called with no arguments).
  * A new interpreter gets its maker's package.path and package.cpath.
  * An Interpreter is to-be-closed: `local interp <close> = create()`
    closes it at the end of the scope. One that is never closed is closed
    when the main interpreter closes (at exit), as CPython ends its
    sub-interpreters; being collected does not close it.
  * close() waits for the interpreter's non-daemon threads, as the end of
    a program does; its daemon threads are stopped.
  * An error there is ExecutionFailed, whose excinfo has type (the class
    name of an exception object, else the Lua type of the error value),
    msg and traceback (the other side's); a KeyboardInterrupt there (Ctrl-C
    reaches the main thread wherever it runs) is raised here as itself.
  * Only one thread at a time may run an interpreter's main code (exec,
    call), as in Python: another gets InterpreterError. The main
    interpreter, and interpreters opened by a C host, are running for good.
]]

local _interp = require "_interpreters"
local _iq = require "_interpqueues"
local threading = require "threading"
local queue = require "queue"
local Object = require "gilua.class"
local exc = require "gilua.exceptions"
local args = require "gilua.args"

local type, select, error, tostring, setmetatable, rawget =
  type, select, error, tostring, setmetatable, rawget
local icall, iexec = _interp.call, _interp.exec

local M = {}

-- Exceptions ---------------------------------------------------------------------

local InterpreterError = exc.Exception:extend("concurrent.interpreters.InterpreterError")
M.InterpreterError = InterpreterError
M.InterpreterNotFoundError =
  InterpreterError:extend("concurrent.interpreters.InterpreterNotFoundError")
M.NotShareableError = exc.ValueError:extend("concurrent.interpreters.NotShareableError")
M.QueueEmpty = queue.Empty:extend("concurrent.interpreters.QueueEmpty")
M.QueueFull = queue.Full:extend("concurrent.interpreters.QueueFull")

--[[ ExecutionFailed: e.excinfo = {type =, msg =, traceback =}, from the
other interpreter; tostring(e) is "concurrent.interpreters.ExecutionFailed:
ValueError: boom", and e.traceback ends with the other side's traceback. ]]
local ExecutionFailed = InterpreterError:extend("concurrent.interpreters.ExecutionFailed")
M.ExecutionFailed = ExecutionFailed

local function summary(info)
  if info.msg == nil or info.msg == "" then return tostring(info.type) end
  if info.type == "string" then return info.msg end
  return info.type .. ": " .. info.msg
end

function ExecutionFailed:init(excinfo)
  InterpreterError.init(self, summary(excinfo))
  self.excinfo = excinfo
  if excinfo.traceback ~= nil then
    self.traceback = (self.traceback or "") ..
      "\n\nUncaught in the interpreter:\n\n" .. summary(excinfo) .. "\n" .. excinfo.traceback
  end
end

-- ok, results... from _interpreters: the results, or the error raised here.
local function outcome(ok, ...)
  if ok then return ... end
  local info = ...
  if info.type == "KeyboardInterrupt" then
    error(exc.KeyboardInterrupt(info.msg), 0)
  end
  if info.results then
    error(M.NotShareableError(info.msg), 0)
  end
  error(ExecutionFailed(info), 0)
end

-- Interpreter -------------------------------------------------------------------

local Interpreter = Object:extend("concurrent.interpreters.Interpreter")
M.Interpreter = Interpreter

-- One object per interpreter id (weakly held), as Python keeps.
local known = setmetatable({}, { __mode = "v" })

local function handle(id, whence)
  local self = known[id]
  if self == nil then
    self = setmetatable({ id = id, whence = whence }, Interpreter)
    known[id] = self
  end
  return self
end

local function find(id)
  for _, info in ipairs(_interp.list_all()) do
    if info.id == id then return info end
  end
end

function Interpreter:init()
  error(exc.TypeError("Interpreter objects are made by create(), list_all(), " ..
                      "get_current() and get_main()"), 3)
end

function Interpreter:__tostring()
  return ("Interpreter(%d)"):format(self.id)
end

function Interpreter:is_running()
  local info = find(self.id)
  if info == nil then
    error(M.InterpreterNotFoundError(("interpreter %d not found"):format(self.id)), 2)
  end
  return info.running
end

function Interpreter:close()
  _interp.destroy(self.id)
end

function Interpreter:__close()
  if find(self.id) then self:close() end
end

-- prepare_main{name = value, ...}: globals of its main namespace.
function Interpreter:prepare_main(ns)
  args.check(ns, "table", "Interpreter.prepare_main", "ns")
  for k in next, ns do
    if type(k) ~= "string" then
      error(exc.TypeError("Interpreter.prepare_main(): names must be strings, got " ..
                          args.typename(k)), 2)
    end
  end
  return outcome(_interp.set_main(self.id, ns))
end

-- exec(code): Lua source, or a function called with no arguments.
function Interpreter:exec(code)
  if type(code) ~= "string" and type(code) ~= "function" then
    error(exc.TypeError("Interpreter.exec(): 'code' must be a string or a function, got " ..
                        args.typename(code)), 2)
  end
  outcome(iexec(self.id, code))
end

function Interpreter:call(fn, ...)
  args.check(fn, "callable", "Interpreter.call", "callable")
  return outcome(icall(self.id, fn, ...))
end

--[[ A new thread (of this interpreter) that calls fn there; started, as in
Python 3.14. Its results are dropped; an error is reported as any error
escaping a thread (threading.excepthook), as ExecutionFailed. ]]
function Interpreter:call_in_thread(fn, ...)
  args.check(fn, "callable", "Interpreter.call_in_thread", "callable")
  local n, a = select("#", ...), { ... }
  local id = self.id
  local t = threading.Thread{ target = function()
    outcome(icall(id, fn, table.unpack(a, 1, n)))
  end }
  t:start()
  return t
end

-- Module functions -----------------------------------------------------------------

function M.create()
  return handle(_interp.create(), "_interpreters module")
end

function M.list_all()
  local list = {}
  for i, info in ipairs(_interp.list_all()) do list[i] = handle(info.id, info.whence) end
  return list
end

function M.get_current()
  local id = _interp.get_current()
  local info = find(id)
  return handle(id, info and info.whence)
end

function M.get_main()
  return handle(0, "runtime init")
end

function M.is_shareable(v)
  return _interp.is_shareable(v)
end

-- Queues --------------------------------------------------------------------------

--[[ A queue shared by interpreters (a C object of _interpqueues): items
are copied in by put and out by get; the queue itself crosses as itself
(put it in another queue, pass it to call or prepare_main). Python's
methods: put(item, block, timeout) or put(item, {block =, timeout =}),
get(block, timeout), put_nowait, get_nowait, empty, full, qsize; fields
maxsize and id. Waits release the GIL; Ctrl-C ends the main thread's. ]]
local Queue = Object:extend("concurrent.interpreters.Queue")
M.Queue = Queue

-- Queue(id): the queue of that id, made earlier (in any interpreter).
getmetatable(Queue).__call = function(_, id)
  return _iq.get_by_id(id)
end

function Queue.is(_, x)
  return _iq.isqueue(x)
end

local QUEUE_ARGS = { "maxsize", fname = "create_queue" }

function M.create_queue(...)
  local maxsize = args.get(QUEUE_ARGS, ...)
  maxsize = args.opt(maxsize, "integer", "create_queue", "maxsize", 0)
  return _iq.new(maxsize)
end

return M
