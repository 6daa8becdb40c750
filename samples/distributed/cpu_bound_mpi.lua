-- The course's lesson, one step further: the same CPU-bound work done
-- sequentially, in 2 threads (no faster: one GIL), in a local process
-- pool and on an MPI pool (about 2x faster on 2 free cores: one GIL per
-- process), the MPI pool being the one that also spans several machines.
--
--     gilua samples/distributed/cpu_bound_mpi.lua [N]
--         the MPI workers are spawned on this machine (MPI_Comm_spawn)
--     mpiexec -n 3 gilua -m mpi.futures samples/distributed/cpu_bound_mpi.lua [N]
--         ranks 1 and 2 are the workers; with a hostfile, on other hosts
--         (docs/distributed.md)
--
-- The pools' start is timed apart: spawning processes costs a few tenths
-- of a second, once.
local futures = require "concurrent.futures"
local mpif = require "mpi.futures"
local threading = require "threading"
local time = require "time"

local N = tonumber(arg and arg[1]) or 20000000

-- The task: a global, so that the workers (which load this script as
-- __mp_main__) know it too.
function travail(n)
  local s = 0
  for i = 1, n do s = s + i % 7 end
  return s
end

local function chrono(f)
  local t0 = time.monotonic()
  local r = f()
  return time.monotonic() - t0, r
end

-- Two calls on an executor, once it is up.
local function on(pool)
  pool:map(travail, {1, 1})
  return chrono(function()
    local r = pool:map(travail, {N, N})
    return r[1] + r[2]
  end)
end

if __name__ == "__main__" then
  local seq, r_seq = chrono(function() return travail(N) + travail(N) end)
  local thr, r_thr = chrono(function()
    local res = {}
    local ts = {}
    for i = 1, 2 do ts[i] = threading.Thread{target = function() res[i] = travail(N) end} end
    for _, t in ipairs(ts) do t:start() end
    for _, t in ipairs(ts) do t:join() end
    return res[1] + res[2]
  end)
  local start, proc, r_proc, mpi_t, r_mpi, mpi_start
  do
    start = time.monotonic()
    local pool <close> = futures.ProcessPoolExecutor{max_workers = 2}
    proc, r_proc = on(pool)
  end
  do
    mpi_start = time.monotonic()
    local pool <close> = mpif.MPIPoolExecutor{max_workers = 2}
    pool:submit(travail, 1):result()
    mpi_start = time.monotonic() - mpi_start
    mpi_t, r_mpi = on(pool)
  end
  print(("%-26s %8s %9s"):format("2 x travail(" .. N .. ")", "temps", "accél."))
  print(("%-26s %7.2fs %8.2fx"):format("séquentiel", seq, 1))
  print(("%-26s %7.2fs %8.2fx"):format("2 threads", thr, seq / thr))
  print(("%-26s %7.2fs %8.2fx"):format("ProcessPoolExecutor(2)", proc, seq / proc))
  print(("%-26s %7.2fs %8.2fx"):format("MPIPoolExecutor(2)", mpi_t, seq / mpi_t))
  print(("(workers MPI démarrés en %.2fs ; %d cœurs ici)"):format(mpi_start, os.cpu_count and os.cpu_count() or 0))
  print(("Résultats identiques: %s"):format(tostring(r_seq == r_thr and r_thr == r_proc and r_proc == r_mpi)))
end
