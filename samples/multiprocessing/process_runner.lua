-- Cours « Tâches parallèles » (CC-IN2P3) : dérivation de Process et implémentation de run()
--
-- class ProcessRunner(Process) is Process:extend(); Process.__init__(self)
-- is Process.init(self). The logger's "%H:%M:%S.mmm" prefix is made by
-- hand. The course sleeps 3 s; here 1 s.
local multiprocessing = require "multiprocessing"
local time = require "time"
local Process = multiprocessing.Process

local function log(msg)
  local now = time.time()
  print(("%s.%03d %s"):format(os.date("%H:%M:%S", math.floor(now)),
                              math.floor(now % 1 * 1000), msg))
end

local ProcessRunner = Process:extend()

function ProcessRunner:init(msg)
  Process.init(self)
  self.msg = msg
end

function ProcessRunner:run()
  log(("Sub-process pid %d saying '%s'"):format(os.getpid(), self.msg))
  time.sleep(1)
end

local function main()
  local process = {}
  process[#process + 1] = ProcessRunner("How are you ?")
  process[#process + 1] = ProcessRunner("How do you do ?")
  log("Launching sub-processes")
  for _, p in ipairs(process) do p:start() end
  for _, p in ipairs(process) do p:join() end
  for _, p in ipairs(process) do
    log(("process %d is over with exit code %d"):format(p.pid, p.exitcode))
  end
end

if __name__ == "__main__" then main() end
