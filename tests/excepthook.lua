#!/usr/bin/env gilua
-- An error escaping a thread: "Exception in thread NAME:" and a traceback on
-- stderr, the program goes on; threading.excepthook can be overridden.
local t = require "tap"
local threading = require "threading"

-- The default hook, seen from outside: a child gilua, stderr captured ---------------------------
do
  local r = t.run([=[
local threading = require "threading"
local function inner()
  error("boom from thread")
end
local th = threading.Thread{ name = "worker-7", target = function() inner() end }
th:start(); th:join()
print("after the thread")
local th2 = threading.Thread{ name = "worker-8", target = function()
  error(ValueError("bad value in thread"))
end }
th2:start(); th2:join()
print("still going", th2:is_alive())
]=])
  t.is(r.status, 0, "an error in a thread does not change the exit status")
  t.like(r.stdout, "after the thread\n", "the main thread went on after the failing thread")
  t.like(r.stdout, "still going\tfalse\n", "... after the second one too; the thread is over")
  t.like(r.stderr, "Exception in thread worker%-7:", "stderr: 'Exception in thread worker-7:'")
  t.like(r.stderr, "boom from thread", "stderr: the error message")
  t.like(r.stderr, "stack traceback", "stderr: a traceback")
  t.like(r.stderr, "%.lua:3:", "the traceback/message points at the line that raised")
  t.like(r.stderr, "inner", "the traceback names the function that raised")
  t.like(r.stderr, "Exception in thread worker%-8:", "stderr: 'Exception in thread worker-8:'")
  t.like(r.stderr, "ValueError: bad value in thread", "an exception object is printed with its class")
  local first = r.stderr:find("Exception in thread worker%-7:")
  local second = r.stderr:find("Exception in thread worker%-8:")
  t.ok(first and second and first < second, "in the order the threads failed")
  t.unlike(r.stdout, "Exception in thread", "nothing of it on stdout")
end

-- SystemExit in a thread ends it silently (Python) ---------------------------------------------
do
  local r = t.run([[
local threading = require "threading"
local th = threading.Thread{ target = function() error(SystemExit(3)) end }
th:start(); th:join()
print("main done")
]])
  t.is(r.status, 0, "SystemExit in a thread does not end the program")
  t.like(r.stdout, "main done", "main went on")
  t.unlike(r.stderr, "Exception in thread", "SystemExit in a thread prints nothing")
end

-- Overriding threading.excepthook ------------------------------------------------------------------
do
  local calls = {}
  local old = threading.excepthook
  threading.excepthook = function(args) calls[#calls + 1] = args end

  local th = threading.Thread{ name = "hooked-1", target = function() error(ValueError("v1")) end }
  th:start(); th:join()
  local th2 = threading.Thread{ name = "hooked-2", target = function() error("plain string") end }
  th2:start(); th2:join()
  local ok_thread = threading.Thread{ target = function() end }
  ok_thread:start(); ok_thread:join()
  threading.excepthook = old

  t.is(#calls, 2, "the hook was called once per failing thread, not for the good one")
  local a = calls[1] or {}
  t.is(a.exc_type, ValueError, "args.exc_type is the class")
  t.ok(ValueError:is(a.exc_value) and a.exc_value.message == "v1", "args.exc_value is the exception")
  t.is(type(a.exc_traceback), "string", "args.exc_traceback is a string")
  t.is(a.thread, th, "args.thread is the Thread object")
  local b = calls[2] or {}
  t.is(b.exc_type, nil, "a plain string error has no exc_type")
  t.like(tostring(b.exc_value), "plain string", "args.exc_value is the string error")
  t.is(b.thread, th2, "args.thread of the second")
  t.is(threading.excepthook, threading.__excepthook__, "the original hook is back, same as __excepthook__")
end

-- A hook that is itself broken does not take the program down (child) -------------------------------
do
  local r = t.run([[
local threading = require "threading"
threading.excepthook = function() error("hook broken") end
local th = threading.Thread{ target = function() error("first") end }
th:start(); th:join()
print("survived")
]])
  t.is(r.status, 0, "a failing excepthook does not end the program")
  t.like(r.stdout, "survived", "main went on")
  t.like(r.stderr, "hook broken", "the hook's own error is reported on stderr")
end

t.done_testing()
