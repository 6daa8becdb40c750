-- Cours « Tâches parallèles » (CC-IN2P3), Multi-threading : Exemple d'utilisation de la classe Timer
--
-- Timer(3, run_the_job) lance run_the_job dans un thread 3 s plus tard ;
-- join() attend la fin de la tâche. Raccourci ici : 1 s au lieu de 3 s de
-- délai, 1,5 s au lieu de 5 s de travail.
local threading = require "threading"
local time = require "time"
local Timer = threading.Timer

local function log(fmt, ...)
  local t = time.time()
  print(("%s.%03d %s"):format(os.date("%H:%M:%S", math.floor(t)),
                              math.floor(t % 1 * 1000), fmt:format(...)))
end

local function run_the_job()
  log("Start delayed task in thread %s", threading.current_thread().name)
  time.sleep(1.5)                       -- 5 s dans le cours
end

local function do_submit()
  -- will start compute task in 1 s (3 s dans le cours)
  local timer = Timer(1, run_the_job)
  timer:start()
  log("Task has been submitted from thread %s", threading.current_thread().name)
  timer:join()
  log("Task submitted from thread %s is over", threading.current_thread().name)
end

local function main()
  do_submit()
end

main()
