--[[
Cours « Concurrence avancée » 20.6 (GIL): « Les extensions C (NumPy,
PyTorch) relâchent le GIL pendant les calculs », and « La programmation
concurrente avec Python », Solutions de contournement : « Écrire des
extensions en C/C++ qui libèrent le GIL lors de l'exécution de tâches
CPU-bound ».

The C module checksum.c computes a CRC-32 in two ways: crc32 releases the
GIL around its loop, crc32_holding keeps it. Each is called once in one
thread, then once in each of two threads at the same time:

  * crc32: the two calls run on two cores at once, so two threads do twice
    the work in about the time of one: a speed-up of about 2x (on 2 free
    cores);
  * crc32_holding: only the GIL holder computes, so two threads take twice
    as long: about 1x, as pure Lua code in threads.

Each measurement is the best of three, to lower the effect of other
programs on a busy machine. "cpu/wall" is the CPU time this process used
divided by the wall time of the two-thread run: about 2 when two cores
computed at once, about 1 when they took turns.

    make        # builds build/samples/extension/checksum.so
    build/gilua samples/extension/threads.lua [megabytes] [rounds]
]]
local threading = require "threading"
local time = require "time"

-- The module is found through package.cpath; `make` puts it beside the
-- gilua command, in <build>/samples/extension/.
local build = arg and arg[-1] and arg[-1]:match("^(.*)/[^/]*$")
if build then
  package.cpath = build .. "/samples/extension/?.so;" .. package.cpath
end
local checksum = require "checksum"

local MEGABYTES = tonumber(arg and arg[1]) or 1
local ROUNDS = tonumber(arg and arg[2]) or 100
local TRIES = 3

-- Data that is not all alike (any string would do).
local bloc = {}
for i = 1, 256 do bloc[i] = string.char((i * 37 + 11) % 256) end
local data = table.concat(bloc):rep(MEGABYTES * 4096)

-- Runs fn(data, ROUNDS) in `n` threads at once; returns the wall time, the
-- CPU time the process used meanwhile and the results.
local function in_threads(n, fn)
  local results, threads = {}, {}
  local cpu0, t0 = time.process_time(), time.perf_counter()
  for i = 1, n do
    threads[i] = threading.Thread{target = function() results[i] = fn(data, ROUNDS) end}
    threads[i]:start()
  end
  for _, t in ipairs(threads) do t:join() end
  return time.perf_counter() - t0, time.process_time() - cpu0, results
end

local function measure(name)
  local fn = checksum[name]
  local one, two, cpu = math.huge, math.huge, 0
  local crc
  for _ = 1, TRIES do
    local w1, _, r1 = in_threads(1, fn)
    local w2, c2, r2 = in_threads(2, fn)
    assert(r1[1] == r2[1] and r2[1] == r2[2], "the threads computed different checksums")
    crc = r1[1]
    one = math.min(one, w1)
    if w2 < two then two, cpu = w2, c2 end
  end
  -- two threads did twice the work of one
  local speedup = 2 * one / two
  print(("%-14s crc=%08x one_thread=%.3f two_threads=%.3f speedup=%.2f cpu_per_wall=%.2f")
        :format(name, crc, one, two, speedup, cpu / two))
  return speedup
end

print(("CRC-32 of %d MB x %d rounds, in one thread, then in each of two threads (%d CPUs)")
      :format(MEGABYTES, ROUNDS, os.cpu_count() or 0))
local released = measure("crc32")
local held = measure("crc32_holding")
print(("releasing the GIL: %.1fx faster with 2 threads; holding it: %.1fx")
      :format(released, held))
