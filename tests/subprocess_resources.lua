#!/usr/bin/env gilua
-- subprocess and the rest of the process: no descriptor leaks (500 runs of
-- every kind), nothing inherited by children, no zombies (errors,
-- timeouts, forgotten Popens), waits without the GIL: two threads' children
-- overlap, and other threads run meanwhile.
local t = require "tap"
local subprocess = require "subprocess"
local threading = require "threading"
local util = require "support.util"

local run, Popen, PIPE, DEVNULL, STDOUT =
  subprocess.run, subprocess.Popen, subprocess.PIPE, subprocess.DEVNULL, subprocess.STDOUT

local PID = os.getpid()

-- Our open descriptors, as a sorted list of numbers. (The child waits a
-- little: right after it starts, we have not yet closed our copies of its
-- ends of the pipes.)
local function fds()
  local out = run({"sh", "-c", "sleep 0.1; ls /proc/" .. PID .. "/fd"}, {capture_output = true}).stdout
  local list = {}
  for n in out:gmatch("%d+") do list[#list + 1] = tonumber(n) end
  table.sort(list)
  return table.concat(list, " ")
end

-- Our children: "pid stat" lines, without the ps doing the listing.
local function children()
  local out = run({"ps", "-o", "pid=,stat=,comm=", "--ppid", tostring(PID)}, {capture_output = true}).stdout
  local list, zombies = {}, 0
  for pid, stat, comm in out:gmatch("(%d+)%s+(%S+)%s+([^\n]*)") do
    if comm ~= "ps" then
      list[#list + 1] = pid .. " " .. stat .. " " .. comm
      if stat:find("^Z") then zombies = zombies + 1 end
    end
  end
  return list, zombies
end

-- Descriptors: 500 runs of every kind leave none behind --------------------------------
do
  local held = io.open("/etc/hostname")        -- io.open: no O_CLOEXEC
  run({"true"})
  local before = fds()
  local kinds = {
    function() run({"true"}) end,
    function() run({"cat"}, {input = "x", capture_output = true}) end,
    function() run({"sh", "-c", "echo o; echo e >&2"}, {stdout = PIPE, stderr = STDOUT}) end,
    function() run({"true"}, {stdin = DEVNULL, stdout = DEVNULL, stderr = DEVNULL}) end,
    function() pcall(run, {"sleep", "1"}, {timeout = 0.001, capture_output = true}) end,
    function() pcall(run, {"no-such-program-gilua"}, {capture_output = true, input = "x"}) end,
    function() pcall(run, {"true"}, {cwd = "/nonexistent", stdout = PIPE}) end,
    function() local p = Popen({"true"}, {stdin = PIPE, stdout = PIPE, stderr = PIPE}); p = nil end, -- 8
    function() local p = Popen({"cat"}, {stdin = PIPE, stdout = PIPE}); p.stdin:write("abc"); p:communicate() end,
    function() pcall(run, {"sh", "-c", "exit 3"}, {check = true, capture_output = true}) end,
  }
  local FORGOTTEN = 8                          -- its pipes wait for the GC
  for i = 1, 500 do kinds[i % #kinds + 1]() end
  collectgarbage()
  collectgarbage()
  run({"true"})                                -- collects what the GC left
  local after = fds()
  t.is(after, before, "descriptors unchanged after 500 runs of ten kinds (" .. after .. ")")
  local _, zombies = children()
  t.is(zombies, 0, "... and no zombie left")
  t.is(#(children()), 0, "... and no child at all left")

  -- nor do they wait for the collector: timeouts, errors and completed
  -- runs close their pipes themselves
  collectgarbage("stop")
  for i = 1, 60 do
    local k = i % #kinds + 1
    if k ~= FORGOTTEN then kinds[k]() end
  end
  local nogc = fds()
  collectgarbage("restart")
  t.is(nogc, before, "54 runs (no forgotten Popen) with the collector stopped: " ..
       "descriptors unchanged, nothing waits for the GC")

  -- what a child sees: 0, 1, 2 and its own only
  local seen = run({"ls", "/proc/self/fd"}, {capture_output = true}).stdout
  local list = {}
  for n in seen:gmatch("%d+") do list[#list + 1] = n end
  t.is(table.concat(list, " "), "0 1 2 3", "a child has 0, 1, 2 (and ls's own 3): " ..
       "our io.open file and pipes are closed in it")
  local p = Popen({"cat"}, {stdin = PIPE, stdout = PIPE})
  seen = run({"sh", "-c", "ls /proc/$$/fd"}, {capture_output = true}).stdout
  t.is(seen, "0\n1\n2\n", "another Popen's pipes do not leak into a second child")
  p.stdin:close()
  p:wait()
  seen = run({"sh", "-c", "ls /proc/$$/fd"}, {capture_output = true, close_fds = false}).stdout
  t.ok(select(2, seen:gsub("\n", "")) > 3, "close_fds = false: the io.open file is inherited")
  held:close()
end

-- No zombies -----------------------------------------------------------------------
do
  -- forgotten Popens: collected by the GC while their child runs
  for _ = 1, 20 do Popen({"sleep", "0.05"}) end
  collectgarbage()
  collectgarbage()
  require("time").sleep(0.3)
  run({"true"})                                -- Python's _cleanup: reaps them
  local list, zombies = children()
  t.is(zombies, 0, "20 forgotten running Popens: reaped once they end (no zombie)")
  t.is(#list, 0, "... no child left")

  local p = Popen({"sleep", "10"})
  local list2 = children()
  t.is(#list2, 1, "a running child is listed")
  p:kill()
  p:wait()
  local _, z = children()
  t.is(z, 0, "kill + wait: no zombie")

  -- a timeout in run: the child is killed and collected
  pcall(run, {"sleep", "10"}, {timeout = 0.1})
  list, zombies = children()
  t.is(#list, 0, "after run's timeout: the child is gone, not a zombie")

  -- an error in the caller between Popen and wait, with <close>
  pcall(function()
    local q <close> = Popen({"sleep", "0.1"})
    error("oops")
  end)
  list = children()
  t.is(#list, 0, "an error inside `local p <close>`: the child was waited for")
end

-- Waiting releases the GIL ----------------------------------------------------------
do
  local ticks, dt = util.ticks_during(run, {"sleep", "0.3"})
  t.ok(ticks >= 10, "another thread ticked while run() waited (" .. ticks .. " ticks in " ..
       ("%.2f"):format(dt) .. " s)")
  ticks = util.ticks_during(function()
    local p = Popen({"sh", "-c", "sleep 0.3; echo done"}, {stdout = PIPE})
    return p:communicate()
  end)
  t.ok(ticks >= 10, "... while communicate() waited (" .. ticks .. ")")
  ticks = util.ticks_during(function()
    local p = Popen({"sleep", "0.3"})
    pcall(p.wait, p, 0.2)
    return p:wait(5)
  end)
  t.ok(ticks >= 10, "... while wait(timeout) waited (" .. ticks .. ")")
  ticks = util.ticks_during(function()
    local p = Popen({"sh", "-c", "sleep 0.3; echo line"}, {stdout = PIPE})
    local l = p.stdout:read("l")
    p:wait()
    return l
  end)
  t.ok(ticks >= 10, "... while p.stdout:read() waited (" .. ticks .. ")")

  -- two threads each running a 0.3 s child: about 0.3 s, not 0.6 s
  local function two(fn)
    local t0 = util.clock()
    local a, b = util.go(fn), util.go(fn)
    a:join()
    b:join()
    return util.clock() - t0
  end
  local seq = util.timed(function() run({"sleep", "0.3"}); run({"sleep", "0.3"}) end)
  local par = two(function() run({"sleep", "0.3"}) end)
  t.between(par, 0.28, 0.9, ("two threads' run({'sleep', '0.3'}) overlap: %.3f s"):format(par))
  t.between(par / seq, 0.3, 0.8, ("... %.2f of the sequential time (%.3f s)"):format(par / seq, seq))
  par = two(function() run({"sh", "-c", "sleep 0.3; echo x"}, {capture_output = true, timeout = 5}) end)
  t.between(par, 0.28, 0.9, ("... also capturing output with a timeout: %.3f s"):format(par))

  -- many threads spawning at once
  local errors, count = {}, 0
  local ths = {}
  for i = 1, 4 do
    ths[i] = threading.Thread{ target = function()
      for _ = 1, 25 do
        local ok, r = pcall(run, {"cat"}, {input = "t" .. i, capture_output = true})
        if ok and r.stdout == "t" .. i then count = count + 1
        else errors[#errors + 1] = tostring(r) end
      end
    end }
    ths[i]:start()
  end
  for i = 1, 4 do ths[i]:join() end
  t.is(count, 100, "4 threads x 25 runs at once: every output right")
  t.is(#errors, 0, "... no error " .. (errors[1] or ""))
  local _, z = children()
  t.is(z, 0, "... no zombie")
end

t.done_testing()
