-- Cours « Concurrence avancée » 20.2, threading : Event — signal entre threads
local threading = require "threading"
local time = require "time"
local Event = threading.Event

local pret = Event()

local function travailleur()
  print("En attente du signal")
  pret:wait()  -- bloque jusqu'au set()
  print("Go !")
end

local t = threading.Thread{target = travailleur}
t:start()
time.sleep(1)
pret:set()
