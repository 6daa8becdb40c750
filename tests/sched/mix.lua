-- Four threads that meet through every kind of wait: a Lock, a Condition,
-- a Queue, an Event, a Timer, sleeps and a thread pool. What it prints
-- depends on the interleaving alone; under the deterministic scheduler the
-- seed decides it.
local sys = require "sys"
local threading = require "threading"
local queue = require "queue"
local time = require "time"
local gil = require "gil"
local futures = require "concurrent.futures"

if arg[1] then sys.setscheduler{mode = "random", seed = tonumber(arg[1])} end

local log = {}
local lock = threading.Lock()
local cond = threading.Condition()
local q = queue.Queue(3)
local ev = threading.Event()
local shared, ready = 0, 0
local t0 = time.monotonic()

local function note(s) lock:acquire(); log[#log + 1] = s; lock:release() end

local function worker(id)
  for i = 1, 3 do
    local temp = shared            -- a race on purpose: no lock
    shared = temp + id
    q:put(id * 10 + i)
  end
  cond:acquire(); ready = ready + 1; cond:notify_all(); cond:release()
  ev:wait()
  time.sleep(0.01 * id)
  note(("w%d woke at %.2f"):format(id, time.monotonic() - t0))
end

local threads = {}
for id = 1, 4 do
  threads[id] = threading.Thread{target = worker, args = {id}, name = "w" .. id}
  threads[id]:start()
end
local got = {}
for _ = 1, 12 do got[#got + 1] = q:get() end
cond:acquire()
while ready < 4 do cond:wait() end
cond:release()
local timer = threading.Timer(0.5, function() note("timer") ; ev:set() end)
timer:start()
local pool <close> = futures.ThreadPoolExecutor{max_workers = 2}
local fs = {}
for i = 1, 6 do fs[i] = pool:submit(function(n) time.sleep(0.001 * n); return n * n end, i) end
local sum = 0
for _, f in ipairs(fs) do sum = sum + f:result() end
for id = 1, 4 do threads[id]:join() end
timer:join()
pool:shutdown()
print("queue order: " .. table.concat(got, " "))
print("shared: " .. shared .. ", pool: " .. sum)
print(table.concat(log, "; "))
print(("elapsed %.3f"):format(time.monotonic() - t0))
local st = gil.stats()
print("switches: " .. st.switches)
