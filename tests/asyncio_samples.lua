#!/usr/bin/env gilua
-- The asyncio samples run and show what they claim: say_hello prints
-- Hello Hello World World in about 1 s; 10,000 concurrent sleeps take
-- about one sleep; the echo server loses nothing.
local t = require "tap"
local util = require "support.util"

local function run(script, ...)
  local cmd = { "gilua", script, ... }
  local p = io.popen(table.concat(cmd, " ") .. " 2>&1", "r")
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

do
  local dt, out, code = util.timed(run, "samples/asyncio/say_hello.lua")
  t.is(code, 0, "say_hello runs")
  t.like(out, "^Hello\nHello\nWorld\nWorld\n", "Hello, Hello, World, World")
  local elapsed = tonumber(out:match("elapsed ([%d.]+) s"))
  t.between(elapsed or 0, 0.95, 1.6, "in about 1 s (" .. tostring(elapsed) .. ")")
  t.between(dt, 0.9, 3, "the whole run too")
end

do
  local out, code = run("samples/asyncio/gather_sleeps.lua", 10000, 0.1)
  t.is(code, 0, "gather_sleeps runs")
  local n, d, secs = out:match("(%d+) attentes de ([%d.]+) s en ([%d.]+) s")
  t.is(n, "10000", "10,000 sleeps")
  t.between(tonumber(secs) or 99, 0.09, 1.0, "10,000 concurrent sleeps of 0.1 s in about 0.1 s (" ..
            tostring(secs) .. " s)")
  t.like(out, "somme des résultats 50005000", "every result came back")
end

do
  local out, code = run("samples/asyncio/echo_server.lua", 50, 20)
  t.is(code, 0, "echo_server runs")
  t.like(out, "50 clients x 20 lines: 1000 echoes correct", "every echo came back")
end

do
  local out, code = run("samples/asyncio/mixed.lua", 2000000)
  t.is(code, 0, "mixed runs")
  local lt = tonumber(out:match("in the loop:%s+[%d.]+ s, the loop ticked%s+(%d+)"))
  local tt = tonumber(out:match("thread pool %(default%):%s+[%d.]+ s, the loop ticked%s+(%d+)"))
  local pt = tonumber(out:match("ProcessPoolExecutor%(2%):%s+[%d.]+ s, the loop ticked%s+(%d+)"))
  t.ok(lt and tt and pt, "three measurements")
  t.is(lt, 0, "CPU work in the loop stops it")
  t.ok((pt or 0) > 0, "CPU work in a process pool leaves the loop running (" .. tostring(pt) .. " ticks)")
end

t.done_testing()
