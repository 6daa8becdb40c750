-- Cours « Tâches parallèles » (CC-IN2P3), Sous-process : Timeout sur l'exécution d'un sous-process
--
-- La diapositive décrit sans code deux façons d'arrêter un sous-process
-- trop long : communicate(timeout=...) qui lève TimeoutExpired, puis
-- kill() (SIGKILL) ; ou un Timer (vu plus tôt dans le cours) qui envoie
-- terminate() (SIGTERM) au bout d'un certain temps. Les deux sont ici,
-- avec 1 s au lieu des 10 s de l'exemple de la diapositive.
-- Un enfant tué par le signal N a returncode == -N.
local subprocess = require "subprocess"
local threading = require "threading"
local time = require "time"

local t0 = time.monotonic()
local function log(fmt, ...)
  print(("[%4.1f s] " .. fmt):format(time.monotonic() - t0, ...))
end

-- 1. communicate(timeout=1), puis kill() et communicate() pour récupérer
--    ce que l'enfant a écrit (le modèle de la documentation Python).
--    `exec sleep` : le shell devient sleep, le kill l'atteint.
local proc = subprocess.Popen("echo début; exec sleep 30",
                              {shell = true, stdout = subprocess.PIPE, text = true})
local ok, err = pcall(proc.communicate, proc, {timeout = 1})
if not ok and subprocess.TimeoutExpired:is(err) then
  log("TimeoutExpired : %s", tostring(err))
  proc:kill()
  local sortie = proc:communicate()
  log("après kill() : sortie « %s », returncode %d (SIGKILL)",
      (sortie:gsub("\n$", "")), proc.returncode)
end

-- 2. Un Timer qui envoie SIGTERM au bout de 1 s (la méthode « Python 2 »).
proc = subprocess.Popen({"sleep", "30"})
local minuteur = threading.Timer(1, function()
  log("Timer : terminate() du pid %d", proc.pid)
  proc:terminate()
end)
minuteur:start()
log("wait() ...")
log("returncode %d (SIGTERM)", proc:wait())
minuteur:cancel()
