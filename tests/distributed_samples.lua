#!/usr/bin/env gilua
-- samples/distributed/: they run and print what docs/distributed.md says.
local t = require "tap"
local mpit = require "support.mpi"

local dir = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../samples/distributed/"

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"status=$?\"")
  local out = p:read("a")
  p:close()
  return out
end

-- The remote manager (no MPI): a server, two workers, a wrong key, a report.
do
  local out = sh(("timeout -s KILL 120 %s %s"):format(t.shquote(t.gilua()),
    t.shquote(dir .. "remote_manager.lua")))
  t.like(out, "status=0\n$", "remote_manager.lua exits with 0")
  t.like(out, "Serveur sur 127%.0%.0%.1:%d+ %(port choisi par le système%), 24 tâches",
         "the server listens on the port the system chose")
  local a, b = out:match("Travailleur A: (%d+) tâches"), out:match("Travailleur B: (%d+) tâches")
  t.ok(a and b and tonumber(a) + tonumber(b) == 24, "two workers took the 24 tasks between them")
  t.like(out, "Un client sans la bonne clé: multiprocessing%.AuthenticationError",
         "a client with a wrong key is refused")
  local n = out:match("24 tâches sur 24 faites %b(); (%d+) nombres premiers")
  t.ok(n and out:find("Attendu: " .. n .. " nombres premiers", 1, true),
       "every task's result is in the shared dict, and they add up to the expected count")
end

mpit.need_mpiexec(t)

do
  local out = sh(("%s timeout -s KILL 120 mpiexec --oversubscribe -n 4 %s %s"):format(
    mpit.env(), t.shquote(t.gilua()), t.shquote(dir .. "mpi_bonjour.lua")))
  t.like(out, "status=0\n$", "mpi_bonjour.lua on 4 ranks exits with 0")
  t.like(out, "Le jeton a fait le tour: rang 0 %-> rang 1 %-> rang 2 %-> rang 3 %(reçu de 3%)",
         "the token went round the ring")
  t.like(out, "Somme de 1 à 1000000 en 4 parts: 500000500000 %(attendu 500000500000%)",
         "bcast, then reduce of the parts")
  local ranks = 0
  for _ in out:gmatch("rang %d: [^\n]+ %(pid %d+%)") do ranks = ranks + 1 end
  t.is(ranks, 4, "gather: every rank named")
end

-- The CPU-bound task, small: the table and the same results everywhere.
local function check_table(out, what)
  t.like(out, "status=0\n$", what .. " exits with 0")
  for _, row in ipairs{ "séquentiel", "2 threads", "ProcessPoolExecutor%(2%)", "MPIPoolExecutor%(2%)" } do
    t.like(out, row .. "%s+[%d.]+s%s+[%d.]+x", what .. ": a row for " .. row:gsub("%%", ""))
  end
  t.like(out, "Résultats identiques: true", what .. ": every way computes the same")
end

check_table(sh(("%s timeout -s KILL 120 %s %s 2000000"):format(mpit.env(), t.shquote(t.gilua()),
  t.shquote(dir .. "cpu_bound_mpi.lua"))), "cpu_bound_mpi.lua alone")
check_table(sh(("%s timeout -s KILL 120 mpiexec --oversubscribe -n 3 %s -m mpi.futures %s 2000000"):format(
  mpit.env(), t.shquote(t.gilua()), t.shquote(dir .. "cpu_bound_mpi.lua"))),
  "cpu_bound_mpi.lua under mpiexec -n 3 -m mpi.futures")

t.done_testing()
