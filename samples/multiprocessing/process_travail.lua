-- Cours « Concurrence avancée » 20.5 multiprocessing : Process
--
-- The child runs the function with the parent's globals as they were at
-- start() (fork), so __name__ is still "__main__" in it: under the fork
-- start method Python prints "Process A dans __main__" too.
local multiprocessing = require "multiprocessing"
local Process = multiprocessing.Process

local function travail(nom)
  print(("Process %s dans %s"):format(nom, __name__))
end

if __name__ == "__main__" then
  local p = Process{target = travail, args = {"A"}}
  p:start()
  p:join()
end
