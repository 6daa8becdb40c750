-- Cours « La programmation concurrente avec Python » : Exemple d'utilisation de multiprocessing
--
-- Two processes run cpu_bound_task (a sum over a range) at the same time,
-- each with its own interpreter and its own GIL, so on two cores they
-- compute at once. The course sums 10**6 numbers; Lua does that in about
-- 3 ms, too little to see anything, so here the sum goes over 10**8
-- numbers (about 0.3 s each). To see that the two processes ran at the
-- same time, the sample then makes the same two calls one after the other
-- and prints both times: on two free cores the processes take about half
-- as long.
--
--     gilua samples/multiprocessing/cpu_bound_task.lua [N]
local multiprocessing = require "multiprocessing"
local time = require "time"

local N = tonumber(arg and arg[1]) or 100000000   -- 10**6 dans le cours

local function cpu_bound_task()
  local count = 0
  for i = 0, N - 1 do
    count = count + i
  end
  print("Task completed")
end

-- Création de deux processus
local process1 = multiprocessing.Process{target = cpu_bound_task}
local process2 = multiprocessing.Process{target = cpu_bound_task}

local t0 = time.perf_counter()

-- Démarrage des processus
process1:start()
process2:start()

-- Attendre que les processus se terminent
process1:join()
process2:join()

local parallele = time.perf_counter() - t0

-- Pour comparer : les deux mêmes calculs, l'un après l'autre
t0 = time.perf_counter()
cpu_bound_task()
cpu_bound_task()
local sequentiel = time.perf_counter() - t0

print(("2 processus en même temps : %.2f s ; l'un après l'autre : %.2f s (%.1fx)")
      :format(parallele, sequentiel, sequentiel / parallele))
