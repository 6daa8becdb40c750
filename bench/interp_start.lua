-- bench/interp_start.lua (gilua only: CPython's twin needs 3.14's
-- concurrent.interpreters).
--
-- 200 times, either ("interpreter") create an interpreter, call a small
-- function there and close it, or ("process") start a process running the
-- same function (multiprocessing, fork) and join it. The interpreter/process
-- line of the table is what one costs against the other.
-- Prints time=<seconds> and check=<sum of the results>.
local interpreters = require "concurrent.interpreters"
local multiprocessing = require "multiprocessing"
local time = require "time"

local NB = 200

local function petit(x) return x + 1 end

local mode = arg[1] or "interpreter"
local somme = 0
local t0 = time.perf_counter()
if mode == "interpreter" then
  for i = 1, NB do
    local it = interpreters.create()
    somme = somme + it:call(petit, i)
    it:close()
  end
elseif mode == "process" then
  for i = 1, NB do
    local p = multiprocessing.Process{ target = petit, args = { i } }
    p:start()
    p:join()
    somme = somme + petit(i)
  end
else
  error("mode must be interpreter or process")
end
print(("time=%.6f"):format(time.perf_counter() - t0))
print(("check=%d"):format(somme))
