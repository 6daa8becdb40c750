-- Cours « Concurrence avancée » 20.5 multiprocessing : Pipe — communication directe
--
-- Pipe() returns its two ends as two values; the list ["data", 42]
-- travels as a Lua array.
local multiprocessing = require "multiprocessing"
local Process, Pipe = multiprocessing.Process, multiprocessing.Pipe

local function envoyeur(conn)
  conn:send({"data", 42})
  conn:close()
end

if __name__ == "__main__" then
  local parent, enfant = Pipe()
  local p = Process{target = envoyeur, args = {enfant}}
  p:start()
  local recu = parent:recv()
  print(("[%q, %d]"):format(recu[1], recu[2]))
  p:join()
end
