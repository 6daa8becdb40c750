-- Cours « Tâches parallèles » (CC-IN2P3), Sous-process : « Possibilité
-- d'envoyer des signaux par terminate(), kill() ou plus généralement
-- send_signal(signal) ; possibilité de vérifier le status d'activité via
-- poll(), d'attendre la fin d'exécution par wait() ; possibilité de
-- connaître le pid et code de retour via donnée membre pid, returncode »
--
-- The slide describes these without code; here each is called:
--   * poll() returns nil (Python's None) while the child runs, then its
--     returncode;
--   * send_signal(sig) sends any signal (a name or a number); a child that
--     catches it (here a shell with a `trap`) decides what to do;
--     terminate() is send_signal(SIGTERM), kill() is send_signal(SIGKILL);
--   * wait() waits for the end and returns the returncode: -N for a child
--     ended by signal N.
local subprocess = require "subprocess"
local time = require "time"
local Popen, PIPE = subprocess.Popen, subprocess.PIPE

-- 1. poll() while it runs, then once it has ended by itself
local p = Popen({"sh", "-c", "sleep 0.5; exit 3"})
print(("pid %d, poll() = %s (en cours)"):format(p.pid, tostring(p:poll())))
local tours = 0
while p:poll() == nil do
  tours = tours + 1
  time.sleep(0.1)                    -- le programme fait autre chose
end
print(("poll() = %d après %d tours d'attente, returncode = %d"):format(p:poll(), tours, p.returncode))

-- 2. send_signal : un enfant qui attrape SIGUSR1 et s'arrête proprement
p = Popen({"sh", "-c", "trap 'echo \"SIGUSR1 reçu, je termine\"; exit 0' USR1; " ..
                        "echo prêt; while :; do sleep 0.05; done"}, {stdout = PIPE})
p.stdout:read("l")                   -- "prêt" : le trap est en place
p:send_signal("SIGUSR1")
print(("send_signal(SIGUSR1) : l'enfant répond « %s », wait() = %d")
      :format(p.stdout:read("l"), p:wait()))
p.stdout:close()

-- 3. terminate(), kill(), send_signal(12) (SIGUSR2, by its number) :
--    returncode -15, -9, -12 (sleep does not catch them)
for _, cas in ipairs{
  {"terminate()", function(q) q:terminate() end},
  {"kill()", function(q) q:kill() end},
  {"send_signal(12)", function(q) q:send_signal(12) end},
} do
  local q = Popen({"sleep", "10"})
  cas[2](q)
  print(("%-15s : wait() = %d, poll() = %d"):format(cas[1], q:wait(), q:poll()))
end
