-- Cours « Concurrence avancée » 20.5 multiprocessing : Queue inter-process
--
-- As in Python, the main program ends while both children run; program
-- exit waits for them (non-daemon processes are joined at exit).
local multiprocessing = require "multiprocessing"
local Process, Queue = multiprocessing.Process, multiprocessing.Queue

local function producteur(q)
  q:put("data")
end

local function consommateur(q)
  print(q:get())
end

if __name__ == "__main__" then
  local q = Queue()
  Process{target = producteur, args = {q}}:start()
  Process{target = consommateur, args = {q}}:start()
end
