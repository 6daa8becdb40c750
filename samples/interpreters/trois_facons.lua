-- Trois façons de faire travailler deux cœurs, et ce que chacune coûte.
--
-- Les mêmes deux appels CPU-bound : l'un après l'autre, dans 2 threads
-- (pas plus vite : un seul GIL), dans 2 interpréteurs (des threads d'un
-- même processus, un GIL chacun) et dans 2 processus (un GIL chacun
-- aussi). Puis ce que coûte le démarrage d'un thread, d'un interpréteur
-- et d'un processus (créer, faire travailler, attendre la fin), et la
-- mémoire de chacun.
local interpreters = require "concurrent.interpreters"
local multiprocessing = require "multiprocessing"
local threading = require "threading"
local time = require "time"

local N = tonumber(arg and arg[1]) or 20000000

local function travail(n)
  local s = 0
  for i = 1, n do s = s + i % 7 end
  return s
end

-- Une colonne de n caractères (et non d'octets : "é" en prend deux).
local function col(texte, n)
  return texte .. (" "):rep(n - utf8.len(texte))
end

local function chrono(f)
  local t0 = time.monotonic()
  f()
  return time.monotonic() - t0
end

-- La mémoire que le processus occupe (RSS, en Kio) et, pour un processus
-- créé par fork, sa part des pages qu'il partage avec son parent (PSS).
local function statut(champ, fichier)
  local f = io.open(fichier or "/proc/self/status")
  if not f then return nil end
  local texte = f:read("a")
  f:close()
  return tonumber(texte:match(champ .. ":%s*(%d+)"))
end

if __name__ == "__main__" then
  local a, b = interpreters.create(), interpreters.create()

  -- 1. Deux calculs -----------------------------------------------------------
  local seq = chrono(function() travail(N); travail(N) end)
  local thr = chrono(function()
    local ts = { threading.Thread{ target = travail, args = { N } },
                 threading.Thread{ target = travail, args = { N } } }
    for _, t in ipairs(ts) do t:start() end
    for _, t in ipairs(ts) do t:join() end
  end)
  local itp = chrono(function()
    local ts = { a:call_in_thread(travail, N), b:call_in_thread(travail, N) }
    for _, t in ipairs(ts) do t:join() end
  end)
  local proc = chrono(function()
    local ps = { multiprocessing.Process{ target = travail, args = { N } },
                 multiprocessing.Process{ target = travail, args = { N } } }
    for _, p in ipairs(ps) do p:start() end
    for _, p in ipairs(ps) do p:join() end
  end)
  print(("%s %8s %8s"):format(col("2 x travail()", 20), "temps", "vs séq."))
  print(("%s %7.2fs %7.2fx"):format(col("séquentiel", 20), seq, 1))
  print(("%s %7.2fs %7.2fx"):format(col("2 threads", 20), thr, seq / thr))
  print(("%s %7.2fs %7.2fx"):format(col("2 interpréteurs", 20), itp, seq / itp))
  print(("%s %7.2fs %7.2fx"):format(col("2 processus", 20), proc, seq / proc))
  print(("(%d cœurs)"):format(multiprocessing.cpu_count()))
  a:close()
  b:close()

  -- 2. Démarrer, faire travailler, attendre la fin ------------------------------
  local FOIS = 100
  local function petit(x) return x + 1 end
  local cout_thread = chrono(function()
    for i = 1, FOIS do
      local t = threading.Thread{ target = petit, args = { i } }
      t:start(); t:join()
    end
  end) / FOIS
  local cout_interp = chrono(function()
    for i = 1, FOIS do
      local it = interpreters.create()
      it:call(petit, i)
      it:close()
    end
  end) / FOIS
  local cout_proc = chrono(function()
    for i = 1, FOIS do
      local p = multiprocessing.Process{ target = petit, args = { i } }
      p:start(); p:join()
    end
  end) / FOIS
  print()
  print("démarrer, faire travailler, attendre la fin (moyenne de " .. FOIS .. ")")
  print(("%s %9.0f µs"):format(col("un thread", 20), cout_thread * 1e6))
  print(("%s %9.0f µs  (%.0f fois moins qu'un processus)")
        :format(col("un interpréteur", 20), cout_interp * 1e6, cout_proc / cout_interp))
  print(("%s %9.0f µs"):format(col("un processus", 20), cout_proc * 1e6))

  -- 3. La mémoire de chacun ------------------------------------------------------
  local K = 20
  collectgarbage()
  local avant = statut("VmRSS")
  local q = interpreters.create_queue()
  local ts = {}
  for i = 1, K do
    ts[i] = threading.Thread{ target = function() q:get() end }
    ts[i]:start()
  end
  local par_thread = (statut("VmRSS") - avant) / K
  for _ = 1, K do q:put(true) end
  for i = 1, K do ts[i]:join() end
  collectgarbage()
  avant = statut("VmRSS")
  local its = {}
  for i = 1, K do its[i] = interpreters.create() end
  local par_interp = (statut("VmRSS") - avant) / K
  local tas = its[1]:call(function() return collectgarbage("count") end)
  for i = 1, K do its[i]:close() end
  local pss = multiprocessing.Queue()
  local p = multiprocessing.Process{ target = function()
    pss:put(statut("Pss", "/proc/self/smaps_rollup") or statut("VmRSS"))
  end }
  p:start()
  local par_proc = pss:get()
  p:join()
  print()
  print("la mémoire de chacun")
  print(("%s %9.0f Kio"):format(col("un thread", 20), par_thread))
  print(("%s %9.0f Kio  (dont %.0f Kio de tas Lua)")
        :format(col("un interpréteur", 20), par_interp, tas))
  print(("%s %9.0f Kio  (sa part des pages, fork)"):format(col("un processus", 20), par_proc))
end
