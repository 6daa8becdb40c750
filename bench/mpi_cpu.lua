-- bench/mpi_cpu.lua: twin of mpi_cpu.py.
--
-- The course's CPU-bound task (the `count += i` loop), called twice on an
-- mpi.futures.MPIPoolExecutor of 1 worker (mode "1": one call after the
-- other) or of 2 workers (mode "2": both at once, one a worker). The
-- workers' start is not timed. On 2 free cores, "2" takes about half the
-- time of "1". Prints time=<seconds>, load (the 1-minute load average
-- before the run), parallelism (the CPU time the workers spent on the
-- calls over the time: about 2 when both ran at once on free cores, less
-- on a busy machine) and check=<sum of the two results>.
local mpif = require "mpi.futures"
local time = require "time"

local N = 60000000

local function compter(n)
  local c0 = os.clock()
  local count = 0
  for k = 0, n - 1 do
    count = count + k
  end
  return {count, os.clock() - c0}
end

if __name__ == "__main__" then
  local workers = tonumber(arg[1] or "2")
  local f = io.open("/proc/loadavg")
  local load = f and f:read("n") or -1
  if f then f:close() end
  local pool <close> = mpif.MPIPoolExecutor{max_workers = workers}
  pool:map(compter, {1, 1})            -- both workers up
  local t0 = time.perf_counter()
  local r = pool:map(compter, {N, N})
  local dt = time.perf_counter() - t0
  print(("time=%.6f"):format(dt))
  print(("load=%.2f"):format(load))
  print(("parallelism=%.2f"):format((r[1][2] + r[2][2]) / dt))
  print(("check=%d"):format(r[1][1] + r[2][1]))
end
