-- Cours « La programmation concurrente avec Python », Introduction aux Futures : vérification de l'état (done, running, cancelled, result(timeout), exception, add_done_callback) ; cours « Tâches parallèles » : Future.cancel()
--
-- The course lists the methods in a table, without a program; this sample
-- calls each of them on futures of a one-thread pool, so that one task
-- runs while the next ones wait (and can still be cancelled).
local futures = require "concurrent.futures"
local threading = require "threading"
local time = require "time"

local function rappel(future)
  print("  rappel : la future est terminée, done() = " .. tostring(future:done()))
end

local pool <close> = futures.ThreadPoolExecutor{max_workers = 1}
local feu_vert = threading.Event()

local longue = pool:submit(function() feu_vert:wait(); return "résultat de la longue tâche" end)
local en_attente = pool:submit(function() return "jamais calculé" end)
local en_erreur = pool:submit(function() error(ValueError("valeur invalide")) end)
time.sleep(0.1)

print("longue : running() = " .. tostring(longue:running()) .. ", done() = " .. tostring(longue:done()))
print("en attente : running() = " .. tostring(en_attente:running()))
print("en attente : cancel() = " .. tostring(en_attente:cancel()) ..
      ", cancelled() = " .. tostring(en_attente:cancelled()))
print("longue : cancel() = " .. tostring(longue:cancel()) .. " (elle tourne déjà)")

local ok, err = pcall(longue.result, longue, 0.2)
print("longue : result(0.2) -> " .. (ok and "ok" or tostring(err)))

longue:add_done_callback(rappel)
feu_vert:set()
print("longue : result() = " .. longue:result())
longue:add_done_callback(rappel)   -- déjà terminée : appelé tout de suite

print("en erreur : exception() = " .. tostring(en_erreur:exception()))
ok, err = pcall(en_erreur.result, en_erreur)
print("en erreur : result() lève " .. tostring(err))
ok, err = pcall(en_attente.result, en_attente)
print("en attente : result() lève " .. tostring(err))
