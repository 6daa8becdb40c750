#!/usr/bin/env gilua
-- The multiprocessing samples run and print what the course shows.
-- ThreadSanitizer stops a child forked from a threaded process at its
-- first new thread unless told otherwise (the samples' children inherit
-- the option): run again with it.
if (os.getenv("GILUA_BUILD") or ""):match("tsan") and
   not (os.getenv("TSAN_OPTIONS") or ""):match("die_after_fork") then
  local gilua = os.getenv("GILUA") or "gilua"
  local opts = "die_after_fork=0 " .. (os.getenv("TSAN_OPTIONS") or "")
  local _, _, code = os.execute("TSAN_OPTIONS='" .. opts .. "' " .. gilua .. " " .. arg[0])
  os.exit(code or 1)
end

local t = require "tap"

local gilua = os.getenv("GILUA") or "gilua"
local dir = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../samples/multiprocessing/"

local function run(name)
  local p = io.popen(gilua .. " " .. dir .. name .. " 2>&1; echo \"status=$?\"")
  local out = p:read("a")
  p:close()
  return out
end

local EXPECT = {
  ["pool_carre.lua"] = { "^0, 1, 4, 9, 16", "100 résultats, le dernier: 9801" },
  ["process_travail.lua"] = { "Process A dans __main__" },
  ["value_compteur.lua"] = { "^10\n1 4 9 16 25 36 49 64 81 100\n" },
  ["queue_producteur.lua"] = { "^data\n" },
  ["pipe_envoyeur.lua"] = { '^%["data", 42%]' },
  ["manager_dict.lua"] = { "^{'modifié': True}\t%[42%]" },
  ["executor_process.lua"] = { "map:\t0, 1, 4", "Tâche 3 échouée: ValueError: la tâche 3 a échoué",
                               "Tâche 9 terminée: 81", "wait%(FIRST_COMPLETED%)" },
  ["cpu_bound_task.lua"] = { "^Task completed\nTask completed\n" },
  ["worker_queue.lua"] = { "^Data from worker\n" },
  ["process_runner.lua"] = { "saying 'How are you %?'", "is over with exit code 0" },
  ["process_target.lua"] = { "Running the job in process id", "is over with exit code 0" },
  ["sequentiel_parallele.lua"] = { "Accélération: ", "Résultats identiques: True" },
  ["communication_processus.lua"] = { "🎉 Traitement terminé! 7 résultats collectés" },
  ["processus_vs_threads.lua"] = { "2 processus" },
}

local names = {}
for name in next, EXPECT do names[#names + 1] = name end
table.sort(names)
for _, name in ipairs(names) do
  local out = run(name)
  t.like(out, "status=0\n$", name .. " exits with 0")
  for _, pat in ipairs(EXPECT[name]) do
    t.like(out, pat, name .. ": " .. pat)
  end
end

t.done_testing()
