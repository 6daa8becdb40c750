-- Cours « Tâches parallèles » (CC-IN2P3), Multi-processing : « Autres
-- méthodes : start(), join(), is_alive(), terminate() pour envoyer un
-- SIGTERM ; données membres : pid, exit_code »
--
-- A process that would compute for ever is stopped from outside:
-- is_alive() says whether it runs, terminate() sends it SIGTERM, join()
-- waits for its end, and exitcode is then -15 (-N: ended by signal N, as
-- in Python). A thread cannot be stopped so (« Un thread ne s'interrompt
-- pas ! »); a process can. The course's `exit_code` is Python's
-- `exitcode`. For comparison, a second process ends by itself with
-- os.exit(3): exitcode 3. (nil is Python's None.)
local multiprocessing = require "multiprocessing"
local time = require "time"
local Process = multiprocessing.Process

local function log(msg)
  local now = time.time()
  print(("%s.%03d %s"):format(os.date("%H:%M:%S", math.floor(now)),
                              math.floor(now % 1 * 1000), msg))
end

local function calcul_sans_fin()
  local x = 0
  while true do x = x + 1 end          -- CPU-bound, never returns
end

local function main()
  local p = Process{name = "SubProcess-infini", target = calcul_sans_fin}
  log(("avant start() : is_alive() = %s, exitcode = %s"):format(p:is_alive(), p.exitcode))
  p:start()
  time.sleep(0.5)
  log(("process %d après 0,5 s : is_alive() = %s, exitcode = %s"):format(p.pid, p:is_alive(), p.exitcode))
  p:terminate()                        -- SIGTERM
  p:join()
  log(("après terminate() et join() : is_alive() = %s, exitcode = %d (SIGTERM)")
      :format(p:is_alive(), p.exitcode))

  local q = Process{name = "SubProcess-fin", target = function() os.exit(3) end}
  q:start()
  q:join()
  log(("process %d fini tout seul : is_alive() = %s, exitcode = %d"):format(q.pid, q:is_alive(), q.exitcode))
end

if __name__ == "__main__" then main() end
