-- Cours « La programmation concurrente avec Python » : Multiprocessing et queue
local multiprocessing = require "multiprocessing"

local function worker(queue)
  queue:put("Data from worker")
end

local queue = multiprocessing.Queue()
local process = multiprocessing.Process{target = worker, args = {queue}}
process:start()
print(queue:get())
process:join()
