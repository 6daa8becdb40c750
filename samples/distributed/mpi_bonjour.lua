-- MPI's first steps, mpi4py's lowercase API in Lua: every rank is a
-- process (its own GIL), they talk by messages.
--
--     mpiexec -n 4 gilua samples/distributed/mpi_bonjour.lua
--
-- (As root, as in a container: OMPI_ALLOW_RUN_AS_ROOT=1
-- OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1. More than one process per core:
-- mpiexec --oversubscribe.)
local mpi = require "mpi"

local comm = mpi.COMM_WORLD
local rang, taille = comm.rank, comm.size

-- Point to point: a token goes round the ring, each rank adds its name.
if taille > 1 then
  local suivant, precedent = (rang + 1) % taille, (rang - 1) % taille
  if rang == 0 then
    comm:send({"rang 0"}, suivant, 1)
    local jeton, status = comm:recv(precedent, 1)
    print(("Le jeton a fait le tour: %s (reçu de %d)"):format(table.concat(jeton, " -> "), status.source))
  else
    local jeton = comm:recv(precedent, 1)
    jeton[#jeton + 1] = "rang " .. rang
    comm:send(jeton, suivant, 1)
  end
end

-- Collectives: the root shares a table, every rank computes its part,
-- the results come back together.
local config = comm:bcast(rang == 0 and {n = 1000000} or nil, 0)
local debut = rang * config.n // taille + 1
local fin = (rang + 1) * config.n // taille
local s = 0
for i = debut, fin do s = s + i end
local total = comm:reduce(s, mpi.SUM, 0)
local noms = comm:gather(("%s (pid %d)"):format(mpi.get_processor_name(), os.getpid()), 0)
if rang == 0 then
  print(("Somme de 1 à %d en %d parts: %d (attendu %d)"):format(config.n, taille, total,
    config.n * (config.n + 1) // 2))
  for r = 1, taille do print(("  rang %d: %s"):format(r - 1, noms[r])) end
end
