-- Cours « Concurrence avancée » 20.3, queue.Queue — file thread-safe : producteur / consommateur avec None comme signal de fin
--
-- Python's None is Lua's nil, and nil travels through the queue: q:put(nil)
-- is the end-of-work signal, q:get() returns it. `from queue import Queue`
-- becomes `local Queue = require("queue").Queue`.
local Queue = require("queue").Queue
local Thread = require("threading").Thread

local q = Queue()

local function producteur()
  for i = 0, 9 do
    q:put(i)
  end
  q:put(nil)  -- signal de fin
end

local function consommateur()
  while true do
    local item = q:get()
    if item == nil then
      break
    end
    print(("Traitement: %d"):format(item))
    q:task_done()
  end
end

Thread{target = producteur}:start()
Thread{target = consommateur}:start()
