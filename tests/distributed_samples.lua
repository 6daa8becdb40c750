#!/usr/bin/env gilua
-- samples/distributed/: they run and print what docs/distributed.md says.
local t = require "tap"
local mpit = require "support.mpi"

mpit.need_mpiexec(t)

local dir = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../samples/distributed/"

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"status=$?\"")
  local out = p:read("a")
  p:close()
  return out
end

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
