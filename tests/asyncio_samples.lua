#!/usr/bin/env gilua
-- The asyncio samples run and show what they claim: say_hello prints
-- Hello Hello World World in about 1 s; 10,000 concurrent sleeps take
-- about one sleep; the echo server loses nothing; in mixed, CPU work in a
-- pool leaves the loop running, and a process pool beats a thread pool.
local t = require "tap"
local util = require "support.util"
local S = require "support.samples"

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

-- mixed: the loop keeps ticking while the CPU work runs in a pool, and the
-- process pool does it faster than the thread pool (measured when two
-- cores are free, see support/samples.lua).
S.check{
  { "asyncio/mixed.lua", cores = true, args = {S.sanitized and 2000000 or 20000000}, check = function(c, r)
      local function row(label)
        local secs, ticks = r.out:match(label .. ":%s+([%d.]+) s, the loop ticked%s+(%d+)")
        return tonumber(secs), tonumber(ticks)
      end
      local _, lt = row("in the loop")
      local ts, tt = row("thread pool %(default%)")
      local ps, pt = row("ProcessPoolExecutor%(2%)")
      c.ok(lt and tt and pt, "mixed: three measurements")
      c.is(lt, 0, "mixed: CPU work in the loop stops it")
      c.ok((tt or 0) > 0, "... in the thread pool the loop goes on (" .. tostring(tt) .. " ticks)")
      c.ok((pt or 0) > 0, "... in a process pool too (" .. tostring(pt) .. " ticks)")
      local want = S.want(r, 1.4)
      local ratio = ts and ps and ts / ps
      c.ok((ratio or 0) >= want, ("... and the process pool does the CPU part %sx faster than the thread pool "
           .. "(>= %.2f, %.2f cores free)"):format(ratio and ("%.2f"):format(ratio) or "?", want, r.cores or 0))
    end },
}

t.done_testing()
