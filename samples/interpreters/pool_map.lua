-- InterpreterPoolExecutor : un ThreadPoolExecutor dont chaque worker
-- travaille dans son propre interpréteur (un GIL chacun). La même map
-- d'une fonction CPU-bound avec des threads, puis avec des interpréteurs.
-- La fonction est anonyme et capture une variable : elle est copiée dans
-- chaque interpréteur avec ses upvalues.
local futures = require "concurrent.futures"
local time = require "time"

local N = tonumber(arg and arg[1]) or 3000000
local modulo = 7

local function chrono(f)
  local t0 = time.monotonic()
  local r = f()
  return time.monotonic() - t0, r
end

local function calcule(pool)
  return pool:map(function(depart)
    local s = 0
    for i = depart, depart + N - 1 do s = s + i % modulo end
    return s
  end, { 1, 2, 3, 4 })
end

local t_threads, r1 = chrono(function()
  local pool <close> = futures.ThreadPoolExecutor{ max_workers = 2 }
  return calcule(pool)
end)
local t_interp, r2 = chrono(function()
  local pool <close> = futures.InterpreterPoolExecutor{ max_workers = 2 }
  return calcule(pool)
end)
print("résultats :", table.concat(r2, ", "))
print("identiques :", table.concat(r1, ",") == table.concat(r2, ","))
print(("ThreadPoolExecutor       %.2f s"):format(t_threads))
print(("InterpreterPoolExecutor  %.2f s  (x%.2f)"):format(t_interp, t_threads / t_interp))
