#!/usr/bin/env gilua
-- The samples of samples/interpreters/ run and show what they claim: two
-- interpreters compute in parallel (>= 1.7x on two free cores) where two
-- threads do not, an interpreter's life costs a small part of a process's,
-- a queue between interpreters, an InterpreterPoolExecutor map.
require("support.util").tsan_allow_fork()  -- trois_facons.lua's processes
local S = require "support.samples"

local slow = S.sanitized          -- sanitizer builds: less work, same claims

-- The speed-up printed after a label ("2 interpréteurs   0.31s   1.95x").
local function speed(out, label)
  return tonumber(out:match(label .. "[^\n]-([%d.]+)x"))
end

S.check{
  { "interpreters/trois_facons.lua", cores = true, args = slow and { 3000000 } or nil,
    check = function(c, r)
      local itp, thr = speed(r.out, "2 interpréteurs"), speed(r.out, "2 threads")
      local want = S.want(r, slow and 1.3 or 1.7)
      c.ok((itp or 0) >= want, ("two interpreters compute in parallel: %.2fx (>= %.2f, %.2f cores free)")
           :format(itp or 0, want, r.cores or 0))
      c.ok(thr and (thr <= 1.3 or (r.cores or 0) < 1.8),
           ("two threads do not (the GIL): %sx (<= 1.3 on free cores)"):format(tostring(thr)))
      c.ok((speed(r.out, "2 processus") or 0) > 0, "the processes' line")
      local fois = tonumber(r.out:match("un interpréteur +%d+ µs  %((%d+) fois moins qu'un processus%)"))
      c.ok(fois and fois >= 5, ("an interpreter's life costs a small part of a process's: %s times less")
           :format(tostring(fois)))
      c.like(r.out, "un interpréteur +%d+ Kio  %(dont %d+ Kio de tas Lua%)", "the memory of each")
    end },
  { "interpreters/file_entre_interpreteurs.lua", check = function(c, r)
      c.like(r.out, "reçu de A : 1² = 1", "items from the first interpreter")
      c.like(r.out, "reçu de B : 5² = 25", "... and from the second")
      c.like(r.out, "10 éléments reçus de 2 interpréteurs", "every item, and each producer's end")
    end },
  { "interpreters/pool_map.lua", alone = true, args = { 300000 }, check = function(c, r)
      c.like(r.out, "identiques :\ttrue", "the same results from both pools")
      c.like(r.out, "InterpreterPoolExecutor +%d", "its time")
    end },
}

require("tap").done_testing()
