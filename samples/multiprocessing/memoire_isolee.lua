-- Cours « Concurrence avancée » 20.1 : mémoire « Partagée » pour threading,
-- « Isolée (sauf shared mem) » pour multiprocessing ; « 8.1 Threading et
-- multiprocessing », Bonnes pratiques : « ❌ Éviter : partage direct de
-- variables — global_var = 0  # Ne fonctionne pas entre processus ».
--
-- A child process starts with a copy of the parent's memory (fork): what
-- it changes, a global variable or a table, changes its copy only, and the
-- parent still sees the old values after join(). A thread shares the
-- memory: its change is seen. A multiprocessing.Value lives in shared
-- memory: the child's change is seen by the parent too.
local multiprocessing = require "multiprocessing"
local threading = require "threading"

global_var = 0
local donnees = {}

local function modifier(qui, partage)
  global_var = global_var + 1
  donnees[#donnees + 1] = qui
  partage.value = partage.value + 1
  print(("%-8s (PID %d) : global_var = %d, #donnees = %d, Value = %d")
        :format(qui, os.getpid(), global_var, #donnees, partage.value))
end

local function etat(qui, partage)
  print(("%-8s (PID %d) : global_var = %d, #donnees = %d, Value = %d")
        :format(qui, os.getpid(), global_var, #donnees, partage.value))
end

if __name__ == "__main__" then
  local partage = multiprocessing.Value("i", 0)

  local p = multiprocessing.Process{target = modifier, args = {"enfant", partage}}
  p:start()
  p:join()
  etat("parent", partage)
  print("   -> le processus a changé sa copie : global_var et donnees sont intacts ici ;")
  print("      la Value, en mémoire partagée, a changé")

  local t = threading.Thread{target = modifier, args = {"thread", partage}}
  t:start()
  t:join()
  etat("parent", partage)
  print("   -> le thread partage la mémoire du parent : tout a changé")
end
