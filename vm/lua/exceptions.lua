--[[
gilua.exceptions: Python's built-in exception classes, as globals.

An exception is an instance of a class made with `extend(name)` under
BaseException:
  e.message    the first argument given to the class (may be nil)
  e.args       every argument, as a table.pack array (with n)
  e.traceback  the Lua traceback where the exception was created, starting
               at the code that called the class (made into a string when
               first read)
  tostring(e)  "Name: message", or "Name" when there is no message, Name
               being the qualified class name ("queue.Empty").
A subclass with its own fields calls the parent's init from its own:
  function MyError:init(msg, code) Exception.init(self, msg, code); self.code = code end

The hierarchy is Python's: BaseException is the root, Exception sits under
it beside KeyboardInterrupt and SystemExit, so `Exception:is(e)` is false
for a KeyboardInterrupt, as `except Exception` does not catch Ctrl-C.
TimeoutError is an OSError, as in Python 3.
]]

local Object = require "gilua.class"

local getinfo, pack, concat = debug.getinfo, table.pack, table.concat
local setmetatable, getmetatable, rawget, rawset, tostring, select =
  setmetatable, getmetatable, rawget, rawset, tostring, select

local BaseException = Object:extend("BaseException")

--[[
debug.traceback costs tens of microseconds (it searches every loaded module
for each function's name), too much for exceptions that code raises and
catches in loops (queue.Empty). So creation only records the frames, and
`e.traceback` formats them, in debug.traceback's layout, on first read.
]]
local MAX_FRAMES = 22

local function capture(level)
  local frames, n = {}, 0
  while n < MAX_FRAMES do
    local info = getinfo(level, "Sln")
    if info == nil then return frames end
    n = n + 1
    frames[n] = info
    level = level + 1
  end
  if getinfo(level, "l") then frames.truncated = true end
  return frames
end

local function format(frames)
  local out = { "stack traceback:" }
  for i = 1, #frames do
    local f = frames[i]
    local where = f.short_src .. ":"
    if f.currentline > 0 then where = where .. f.currentline .. ":" end
    local what
    if f.namewhat ~= "" then
      what = (f.namewhat == "global" and "function" or f.namewhat) ..
             " '" .. tostring(f.name) .. "'"
    elseif f.what == "main" then
      what = "main chunk"
    elseif f.what == "C" then
      what = "?"
    else
      what = "function <" .. f.short_src .. ":" .. f.linedefined .. ">"
    end
    out[#out + 1] = "\n\t" .. where .. " in " .. what
  end
  if frames.truncated then out[#out + 1] = "\n\t..." end
  return concat(out)
end

-- The frames are taken here rather than in init so that the first one is
-- always the caller of the class, however many init levels subclasses add.
getmetatable(BaseException).__call = function(cls, ...)
  local e = setmetatable({ _frames = capture(3) }, cls)
  cls.init(e, ...)
  return e
end

BaseException:property("traceback", function(self)
  local frames = rawget(self, "_frames")
  if frames == nil then return nil end
  local tb = format(frames)
  rawset(self, "traceback", tb)          -- later reads find the string
  rawset(self, "_frames", nil)
  return tb
end, function(self, tb)
  rawset(self, "_frames", nil)
  rawset(self, "traceback", tb)
end)

function BaseException:init(...)
  self.message = (...)
  self.args = pack(...)
end

function BaseException:__tostring()
  local name = rawget(getmetatable(self), "__name")
  local msg = self.message
  if msg == nil then return name end
  return name .. ": " .. tostring(msg)
end

local classes = { BaseException = BaseException }

local function def(name, parent)
  local cls = parent:extend(name)
  classes[name] = cls
  return cls
end

local Exception = def("Exception", BaseException)
local SystemExit = def("SystemExit", BaseException)
def("KeyboardInterrupt", BaseException)

-- SystemExit(code): Python keeps the code apart from the message.
function SystemExit:init(...)
  BaseException.init(self, ...)
  self.code = (...)
end

def("AssertionError", Exception)
def("AttributeError", Exception)
def("EOFError", Exception)
def("TypeError", Exception)
def("ValueError", Exception)
def("MemoryError", Exception)
def("StopIteration", Exception)
local ImportError = def("ImportError", Exception)
def("ModuleNotFoundError", ImportError)

local ArithmeticError = def("ArithmeticError", Exception)
def("ZeroDivisionError", ArithmeticError)
def("OverflowError", ArithmeticError)

local LookupError = def("LookupError", Exception)
def("IndexError", LookupError)
def("KeyError", LookupError)

local RuntimeError = def("RuntimeError", Exception)
def("NotImplementedError", RuntimeError)
def("RecursionError", RuntimeError)

-- OSError(errno, strerror[, filename]) reads as Python prints it:
-- "[Errno 2] No such file or directory: 'x'"; OSError(msg) is a plain one.
local OSError = def("OSError", Exception)
function OSError:init(...)
  BaseException.init(self, ...)
  local errno, strerror, filename = ...
  if math.type(errno) == "integer" and select("#", ...) >= 2 then
    self.errno, self.strerror, self.filename = errno, strerror, filename
    local msg = "[Errno " .. errno .. "] " .. tostring(strerror)
    if filename ~= nil then msg = msg .. ": '" .. tostring(filename) .. "'" end
    self.message = msg
  end
end

def("FileNotFoundError", OSError)
def("FileExistsError", OSError)
def("PermissionError", OSError)
def("IsADirectoryError", OSError)
def("NotADirectoryError", OSError)
def("InterruptedError", OSError)
def("ChildProcessError", OSError)
def("ProcessLookupError", OSError)
def("TimeoutError", OSError)
def("BlockingIOError", OSError)
local ConnectionError = def("ConnectionError", OSError)
def("BrokenPipeError", ConnectionError)
def("ConnectionAbortedError", ConnectionError)
def("ConnectionResetError", ConnectionError)
def("ConnectionRefusedError", ConnectionError)

for name, cls in pairs(classes) do _G[name] = cls end

return classes
