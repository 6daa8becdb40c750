-- bench/mpi_executor.lua: twin of mpi_executor.py.
--
-- mpi.futures.MPIPoolExecutor with 2 workers (spawned: MPI_Comm_spawn):
-- 5,000 trivial tasks submitted, then every result read. The workers'
-- start is timed apart (startup_s): one task is run first, so that the
-- timing holds the tasks only, as in mpi4py.futures' twin. Prints
-- time=<seconds>, tasks_per_s, startup_s and check.
local mpif = require "mpi.futures"
local time = require "time"

local NB = 5000

local function double(x) return 2 * x end

if __name__ == "__main__" then
  local t0 = time.perf_counter()
  local pool <close> = mpif.MPIPoolExecutor{max_workers = 2}
  pool:submit(double, 0):result()
  local t1 = time.perf_counter()
  local fs = {}
  for i = 1, NB do fs[i] = pool:submit(double, i) end
  local somme = 0
  for i = 1, NB do somme = somme + fs[i]:result() end
  local dt = time.perf_counter() - t1
  print(("time=%.6f"):format(dt))
  print(("tasks_per_s=%.0f"):format(NB / dt))
  print(("startup_s=%.3f"):format(t1 - t0))
  print(("check=%d"):format(somme))
end
