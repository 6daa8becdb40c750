#!/usr/bin/env gilua
-- The exception model: global built-in classes, Python's hierarchy,
-- message/args/traceback, tostring, Class:is, errors raised by the modules.
local t = require "tap"
local threading = require "threading"
local time = require "time"

local names = { "Exception", "RuntimeError", "ValueError", "TypeError", "TimeoutError",
                "OSError", "FileNotFoundError", "EOFError", "KeyboardInterrupt",
                "NotImplementedError", "KeyError", "IndexError", "AttributeError" }
for _, n in ipairs(names) do
  t.is(type(_G[n]), "table", n .. " is a global class")
end

-- hierarchy (Python's)
local isa = {
  { RuntimeError, Exception }, { ValueError, Exception }, { TypeError, Exception },
  { OSError, Exception }, { FileNotFoundError, OSError }, { TimeoutError, OSError },
  { NotImplementedError, RuntimeError }, { KeyError, Exception }, { IndexError, Exception },
  { EOFError, Exception }, { AttributeError, Exception },
  { threading.BrokenBarrierError, RuntimeError },
}
for _, p in ipairs(isa) do
  t.ok(p[2]:is(p[1]("x")), tostring(p[1]) .. " is a " .. tostring(p[2]))
end
t.ok(not Exception:is(KeyboardInterrupt()), "KeyboardInterrupt is not an Exception (as in Python)")
t.ok(not ValueError:is(RuntimeError("x")), "a RuntimeError is not a ValueError")
t.ok(not OSError:is(ValueError("x")), "a ValueError is not an OSError")
t.ok(not FileNotFoundError:is(OSError("x")), "an OSError is not a FileNotFoundError")
t.ok(not Exception:is("a string"), "Class:is of a string is false")
t.ok(not Exception:is(nil), "Class:is of nil is false")
t.ok(not Exception:is({}), "Class:is of a plain table is false")

-- fields and tostring
do
  local e = ValueError("bad value", 42)
  t.is(e.message, "bad value", "message is the first argument")
  t.is(e.args and e.args[2], 42, "args holds every argument")
  t.is(type(e.traceback), "string", "traceback is a string")
  t.like(e.traceback, "exceptions%.lua", "the traceback names the place the exception was made")
  t.is(tostring(e), "ValueError: bad value", "tostring is 'Class: message'")
  t.is(tostring(RuntimeError()), "RuntimeError", "tostring without a message is the class name")
  local My = Exception:extend("mymod.MyError")
  t.is(tostring(My("oops")), "mymod.MyError: oops", "tostring uses the qualified class name")
  t.ok(Exception:is(My("x")) and My:is(My("x")), "a user subclass is an Exception")
  local Sub = My:extend("mymod.SubError")
  t.ok(My:is(Sub()) and not Sub:is(My()), "subclass of a subclass")
  t.like(tostring(threading.BrokenBarrierError("b")), "^threading%.BrokenBarrierError: b$",
         "threading.BrokenBarrierError prints with its module")
end

-- the DESIGN's example: queue.Empty from a timed get
do
  local queue = require "queue"
  local q = queue.Queue()
  local ok, err = pcall(q.get, q, true, 0.05)
  t.ok(not ok and queue.Empty:is(err), "pcall(q.get, q, true, 0.05) on an empty queue: queue.Empty")
  t.like(tostring(err), "^queue%.Empty", "tostring is in the 'queue.Empty: ...' form")
  t.ok(Exception:is(err) and not RuntimeError:is(err), "queue.Empty is an Exception, not a RuntimeError")
end

-- raising and catching keeps the object
do
  local e = TypeError("t")
  local ok, got = pcall(error, e)
  t.ok(not ok and got == e, "pcall returns the very exception object raised")
  local ok2, got2 = pcall(function() error(KeyError("k")) end)
  t.ok(not ok2 and KeyError:is(got2) and got2.message == "k", "error(Class(msg)) is caught with its class")
  local ok3, got3 = pcall(error, "plain")
  t.ok(not ok3 and type(got3) == "string", "a plain Lua error stays a string")
end

-- OSError(errno, strerror, filename) reads as Python prints it
do
  local e = FileNotFoundError(2, "No such file or directory", "x.txt")
  t.is(e.errno, 2, "OSError errno")
  t.is(e.strerror, "No such file or directory", "OSError strerror")
  t.is(e.filename, "x.txt", "OSError filename")
  t.is(tostring(e), "FileNotFoundError: [Errno 2] No such file or directory: 'x.txt'",
       "OSError's message as Python prints it")
end

-- errors the modules raise are exception objects of the right class
do
  local lk = threading.Lock()
  local ok, err = pcall(lk.release, lk)
  t.ok(not ok and RuntimeError:is(err), "Lock:release unlocked raises a RuntimeError object")
  t.ok(type(err) == "table" and type(err.message) == "string" and #err.message > 0,
       "... with a message")
  t.ok(type(err) == "table" and type(err.traceback) == "string", "... and a traceback")
  t.raises(function() time.sleep(-1) end, ValueError, "time.sleep(-1): ValueError")
  local ok2, err2 = pcall(time.sleep, "soon")
  t.ok(not ok2 and tostring(err2):find("sleep"),
       "a bad argument names the function (" .. tostring(err2) .. ")")
  t.raises(function() threading.Semaphore("three") end, TypeError,
           "Semaphore('three'): TypeError")
  local _, err3 = pcall(threading.Semaphore, "three")
  t.like(tostring(err3), "Semaphore", "... naming the function")
  t.like(tostring(err3), "value", "... and the argument")
end

-- an error raised in a thread carries its class to excepthook's args (see also excepthook.lua)
do
  local got
  local old = threading.excepthook
  threading.excepthook = function(a) got = a end
  local th = threading.Thread{ target = function() error(NotImplementedError("later")) end }
  th:start(); th:join()
  threading.excepthook = old
  t.is(got and got.exc_type, NotImplementedError, "exc_type is the class of the raised object")
end

t.done_testing()
