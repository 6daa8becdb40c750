-- Cours « Tâches parallèles » (CC-IN2P3) : spécification d'une fonction via le paramètre target
--
-- The course sleeps 3 s; here 1 s.
local multiprocessing = require "multiprocessing"
local time = require "time"
local Process = multiprocessing.Process

local function log(msg)
  local now = time.time()
  print(("%s.%03d %s"):format(os.date("%H:%M:%S", math.floor(now)),
                              math.floor(now % 1 * 1000), msg))
end

local function run_the_job()
  log(("Running the job in process id %d"):format(os.getpid()))
  time.sleep(1)
end

local function main()
  local process = {}
  process[#process + 1] = Process{name = "SubProcess-1", target = run_the_job}
  process[#process + 1] = Process{name = "SubProcess-2", target = run_the_job}
  log("Launching sub-processes")
  for _, p in ipairs(process) do p:start() end
  for _, p in ipairs(process) do p:join() end
  for _, p in ipairs(process) do
    log(("process %d is over with exit code %d"):format(p.pid, p.exitcode))
  end
end

if __name__ == "__main__" then main() end
