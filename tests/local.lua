#!/usr/bin/env gilua
-- threading.local: per-thread attributes.
local t = require "tap"
local threading = require "threading"
local time = require "time"

t.is(threading["local"], threading.local_, "threading['local'] and threading.local_ are the same class")

do
  local data = threading.local_()
  data.x = "main"
  local seen, set_in_thread = "unset", nil
  local th = threading.Thread{ target = function()
    seen = data.x
    data.x = "thread"
    set_in_thread = data.x
  end }
  th:start(); th:join()
  t.is(seen, nil, "a thread does not see main's value")
  t.is(set_in_thread, "thread", "a thread sees its own value")
  t.is(data.x, "main", "main's value was not changed by the thread")
end

do -- many threads, each with its own value, interleaved by sleeps
  local data = threading["local"]()
  local wrong = 0
  local ths = {}
  for i = 1, 6 do
    ths[i] = threading.Thread{ target = function()
      data.v = i
      for _ = 1, 5 do
        time.sleep(0.005)
        if data.v ~= i then wrong = wrong + 1 end
        data.v = i
      end
    end }
    ths[i]:start()
  end
  for i = 1, 6 do ths[i]:join() end
  t.is(wrong, 0, "six threads each kept their own value across switches")
  t.is(data.v, nil, "main never set a value")
end

do -- a subclass: init runs again in each thread that uses the object
  local Counter = threading.local_:extend()
  function Counter:init(start) self.n = start end
  local c = Counter(10)
  c.n = c.n + 1
  local inner
  local th = threading.Thread{ target = function() inner = c.n end }
  th:start(); th:join()
  t.is(c.n, 11, "subclass of local: main's value")
  t.is(inner, 10, "subclass of local: init ran again in the other thread")
  t.ok(threading.local_:is(c), "the instance is a local")
end

t.raises(function() threading.local_(1) end, TypeError,
         "arguments to a plain local: TypeError")

t.done_testing()
