#!/usr/bin/env gilua
-- Bad timeouts in every wait, with Python's answers: NaN is a ValueError,
-- inf or a huge value an OverflowError ("timeout value is too large"), a
-- string a TypeError; a negative timeout waits not at all, or is a
-- ValueError where Python says so (queue.Queue, time.sleep, Lock.acquire
-- other than -1). Each call runs in a child gilua with a time limit: before
-- the fix some of them waited for ever (NaN, math.huge as a lock timeout).
local t = require "tap"
local subprocess = require "subprocess"

local LIMIT = 20   -- seconds a child may take for all its values

-- The values tried, by name (the child rebuilds them from the same names).
local VALUES = { "nan", "inf", "huge", "string", "-0.5", "-1" }
local PRELUDE = [[
local VALUES = { nan = 0/0, inf = math.huge, huge = 1e300, string = "x",
                 ["-0.5"] = -0.5, ["-1"] = -1 }
local time = require "time"
local function try(name, f, value)
  local v = VALUES[value or name]
  local t0 = time.monotonic()
  local ok, e = pcall(f, v)
  local secs = time.monotonic() - t0
  local cls = ok and "ok" or (type(e) == "table" and rawget(getmetatable(e), "__name")) or "error"
  local msg = ok and "" or tostring(e):gsub("\n", " ")
  io.write(name, "|", cls, "|", ("%.2f"):format(secs), "|", msg, "\n")
  io.stdout:flush()
end
]]

-- Runs `code` in a child gilua; its output, or nil (and what it wrote on
-- stderr) when it did not end within LIMIT seconds.
local function child(code, name)
  local path = t.tmpname(".lua")
  local fh = assert(io.open(path, "w"))
  fh:write(code)
  fh:close()
  local p = subprocess.Popen({t.gilua(), path}, {stdout = subprocess.PIPE, stderr = subprocess.PIPE})
  local ok, out, err = pcall(p.communicate, p, nil, LIMIT)
  if not ok then
    p:kill(); p:wait()
    ok, out, err = pcall(p.communicate, p, nil, 1)
    out = ok and out or ""
    t.diag(name .. ": the child was still waiting after " .. LIMIT .. " s")
  end
  os.remove(path)
  return out or "", err or ""
end

--[[ case(name, setup, call, negative, timed_out, teardown): `setup` is Lua
code run once in the child; `call` the body of a function of `v` that
waits with timeout v; `negative` what a negative timeout gives: "zero" (no
wait: returns, or raises the class `timed_out`), "error" (ValueError) or
"lock" (-1 waits for ever, here on a free lock; other negatives are
ValueErrors); `teardown` ends what setup started (the child's own children
hold its output pipes). ]]
local function case(name, setup, call, negative, timed_out, teardown)
  local code = {PRELUDE, setup, "\nlocal function f(v) ", call, " end\n"}
  for _, v in ipairs(VALUES) do code[#code + 1] = ("try(%q, f)\n"):format(v) end
  code[#code + 1] = teardown or ""
  local out, err = child(table.concat(code), name)
  local got = {}
  for line in (out or ""):gmatch("[^\n]+") do
    local v, cls, secs, msg = line:match("^([^|]*)|([^|]*)|([^|]*)|(.*)$")
    if v then got[v] = { cls = cls, secs = tonumber(secs), msg = msg } end
  end
  local function expect(v, cls, pattern)
    local r = got[v]
    local label = ("%s, timeout %s: %s"):format(name, v, cls)
    if r == nil then
      t.ok(false, label, "no answer (the call waited for ever?)" ..
           ((err or "") ~= "" and ("; stderr: " .. err:sub(1, 300)) or ""))
    elseif pattern then
      t.ok(r.cls == cls and r.msg:find(pattern) ~= nil, label, r.cls .. ": " .. r.msg)
    else
      t.ok(r.cls == cls, label, r.cls .. ": " .. r.msg)
    end
    return r
  end
  expect("nan", "ValueError", "NaN")
  expect("inf", "OverflowError", "timeout value is too large")
  expect("huge", "OverflowError", "timeout value is too large")
  expect("string", "TypeError", "timeout")
  if negative == "zero" then
    for _, v in ipairs{"-0.5", "-1"} do
      local r = expect(v, timed_out or "ok")
      t.ok(r and r.secs < 2, name .. ", timeout " .. v .. ": no wait",
           r and (r.secs .. " s") or "")
    end
  elseif negative == "error" then
    expect("-0.5", "ValueError", "non%-negative")
    expect("-1", "ValueError", "non%-negative")
  else
    expect("-0.5", "ValueError", "non%-negative")
    expect("-1", "ok")
  end
end

-- threading ----------------------------------------------------------------------------
local TH = 'local threading = require "threading"\n'
case("threading.Lock.acquire", TH .. "local l = threading.Lock()",
     "local got = l:acquire(true, v); if got then l:release() end", "lock")
case("threading.RLock.acquire", TH .. "local l = threading.RLock()",
     "local got = l:acquire{timeout = v}; if got then l:release() end", "lock")
case("threading.Thread.join", TH .. [[
local th = threading.Thread{target = function() time.sleep(30) end, daemon = true}
th:start()]], "th:join(v)", "zero")
case("threading.Event.wait", TH .. "local e = threading.Event()", "return e:wait(v)", "zero")
case("threading.Condition.wait", TH .. "local c = threading.Condition()",
     "c:acquire(); local ok, r = pcall(c.wait, c, v); c:release(); assert(ok, r)", "zero")
case("threading.Condition.wait_for", TH .. "local c = threading.Condition()",
     "c:acquire(); local ok, r = pcall(c.wait_for, c, function() return false end, v)"
     .. "; c:release(); assert(ok, r)", "zero")
case("threading.Semaphore.acquire", TH .. "local s = threading.Semaphore(0)",
     "return s:acquire(true, v)", "zero")
case("threading.Barrier.wait", TH .. "", "threading.Barrier(2):wait(v)", "zero",
     "threading.BrokenBarrierError")
case("threading.Barrier(timeout)", TH .. "", "threading.Barrier(2, nil, v):wait()", "zero",
     "threading.BrokenBarrierError")

-- queue ----------------------------------------------------------------------------------
local Q = 'local queue = require "queue"\n'
case("queue.Queue.get", Q .. "local q = queue.Queue()", "q:get(true, v)", "error")
case("queue.Queue.put", Q .. "local q = queue.Queue(1); q:put(1)", "q:put(2, true, v)", "error")
case("queue.SimpleQueue.get", Q .. "local q = queue.SimpleQueue()", "q:get(true, v)", "error")

-- concurrent.futures ---------------------------------------------------------------------
local F = 'local futures = require "concurrent.futures"\n'
case("Future.result", F .. "local fut = futures.Future()", "fut:result(v)", "zero",
     "TimeoutError")
case("Future.exception", F .. "local fut = futures.Future()", "fut:exception(v)", "zero",
     "TimeoutError")
case("concurrent.futures.wait", F .. "local fut = futures.Future()",
     "futures.wait({fut}, v)", "zero")
case("concurrent.futures.as_completed", F .. "local fut = futures.Future()",
     "for _ in futures.as_completed({fut}, v) do end", "zero", "TimeoutError")

-- time and sys ---------------------------------------------------------------------------
do
  -- time.sleep and sys.setswitchinterval name their arguments otherwise
  local code = PRELUDE .. [[
local sys = require "sys"
for _, v in ipairs{"nan", "inf", "huge", "string", "-0.5"} do
  try(v, function(x) time.sleep(x) end)
end
for _, v in ipairs{"nan", "inf", "huge", "-1"} do
  try("switch " .. v, function(x) sys.setswitchinterval(x) end, v)
end
io.write("interval|", sys.getswitchinterval(), "\n")
]]
  local out = child(code, "time.sleep and sys.setswitchinterval")
  local got = {}
  for line in out:gmatch("[^\n]+") do
    local v, cls, _, msg = line:match("^([^|]*)|([^|]*)|([^|]*)|(.*)$")
    if v then got[v] = msg
    else
      local k, x = line:match("^([^|]*)|(.*)$")
      if k then got[k] = x end
    end
  end
  t.like(got.nan or "", "^ValueError: .*NaN", "time.sleep(NaN): ValueError")
  t.like(got.inf or "", "^OverflowError: .*too large", "time.sleep(math.huge): OverflowError")
  t.like(got.huge or "", "^OverflowError", "time.sleep(1e300): OverflowError")
  t.like(got["-0.5"] or "", "^ValueError: .*non%-negative", "time.sleep(-0.5): ValueError")
  t.like(got["switch nan"] or "", "^ValueError", "sys.setswitchinterval(NaN): ValueError")
  t.like(got["switch inf"] or "", "^OverflowError: .*too large",
         "sys.setswitchinterval(math.huge): OverflowError")
  t.like(got["switch huge"] or "", "^OverflowError", "sys.setswitchinterval(1e300): OverflowError")
  t.like(got["switch -1"] or "", "^ValueError: .*strictly positive",
         "sys.setswitchinterval(-1): ValueError")
  t.is(tonumber(got.interval), 0.005, "the switch interval is left as it was")
end

-- multiprocessing ------------------------------------------------------------------------
local MP = 'local mp = require "multiprocessing"\n'
case("multiprocessing.Lock.acquire", MP .. "local l = mp.Lock(); l:acquire()",
     "return l:acquire(true, v)", "zero")
case("multiprocessing.RLock.acquire", MP .. [[
local l = mp.RLock()
local th = require("threading").Thread{target = function() l:acquire(); time.sleep(30) end, daemon = true}
th:start(); time.sleep(0.1)]], "return l:acquire{timeout = v}", "zero")
case("multiprocessing.Semaphore.acquire", MP .. "local s = mp.Semaphore(0)",
     "return s:acquire(true, v)", "zero")
case("multiprocessing.Event.wait", MP .. "local e = mp.Event()", "return e:wait(v)", "zero")
case("multiprocessing.Condition.wait", MP .. "local c = mp.Condition()",
     "c:acquire(); local ok, r = pcall(c.wait, c, v); c:release(); assert(ok, r)", "zero")
case("multiprocessing.Barrier.wait", MP .. "", "mp.Barrier(2):wait(v)", "zero",
     "threading.BrokenBarrierError")
case("multiprocessing.Queue.get", MP .. "local q = mp.Queue()", "q:get(true, v)", "zero",
     "queue.Empty")
case("multiprocessing.Queue.put", MP .. "local q = mp.Queue(1); q:put(1)", "q:put(2, true, v)",
     "zero", "queue.Full")
case("Connection.poll", MP .. "local a, b = mp.Pipe()", "return a:poll(v)", "zero")
case("multiprocessing.connection.wait", MP .. "local a, b = mp.Pipe()",
     "return mp.connection.wait({a}, v)", "zero")
case("Process.join", MP .. [[
local p = mp.Process{target = function() time.sleep(30) end, daemon = true}
p:start()]], "p:join(v)", "zero")
case("AsyncResult.get", MP .. [[
local pool = mp.Pool(1)
local r = pool:apply_async(time.sleep, {30})]], "r:get(v)", "zero", "multiprocessing.TimeoutError",
     "pool:terminate()")

-- subprocess -----------------------------------------------------------------------------
local SP = 'local subprocess = require "subprocess"\n'
case("Popen.wait", SP .. 'local p = subprocess.Popen({"sleep", "30"})', "p:wait(v)", "zero",
     "subprocess.TimeoutExpired", "p:kill(); p:wait()")
case("Popen.communicate", SP .. 'local p = subprocess.Popen({"sleep", "30"}, {stdout = subprocess.PIPE})',
     "p:communicate(nil, v)", "zero", "subprocess.TimeoutExpired", "p:kill(); p:wait()")
case("subprocess.run", SP, 'subprocess.run({"sleep", "30"}, {timeout = v})', "zero",
     "subprocess.TimeoutExpired")

-- the rule itself, for Lua modules ---------------------------------------------------------
do
  local args = require "gilua.args"
  t.is(args.timeout(nil, "f"), nil, "args.timeout(nil): no limit")
  t.is(args.timeout(2, "f"), 2, "args.timeout(2): 2")
  t.is(args.timeout(-3, "f"), 0, "args.timeout(-3): 0 (no wait)")
  t.is(args.timeout(-1, "f", "lock"), nil, "args.timeout(-1, f, 'lock'): no limit")
  t.raises(function() args.timeout(-3, "f", "error") end, ValueError,
           "args.timeout(-3, f, 'error'): ValueError")
  local e = t.raises(function() args.timeout(0 / 0, "loop.call_later", "zero", "delay") end,
                     ValueError, "args.timeout(NaN): ValueError")
  t.like(tostring(e), "loop%.call_later%(%): 'delay' must not be NaN",
         "... naming the function and the argument")
  t.raises(function() args.timeout(math.huge, "f") end, OverflowError,
           "args.timeout(math.huge): OverflowError")
  t.ok(OverflowError:is(select(2, pcall(args.timeout, args.TIMEOUT_MAX * 2, "f"))),
       "args.timeout above TIMEOUT_MAX: OverflowError")
  t.is(args.timeout(args.TIMEOUT_MAX, "f"), args.TIMEOUT_MAX, "TIMEOUT_MAX itself is allowed")
  t.is(require("threading").TIMEOUT_MAX, args.TIMEOUT_MAX, "threading.TIMEOUT_MAX")
end

t.done_testing()
