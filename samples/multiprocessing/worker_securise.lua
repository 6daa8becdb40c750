-- Cours « 8.1 Threading et multiprocessing », Bonnes pratiques, 3. Gestion d'erreurs : worker_securise
--
--     def worker_securise(task):
--         try:
--             return process_task(task)
--         except Exception as e:
--             logging.error(f"Erreur dans worker: {e}")
--             return None
--
-- The course gives the function alone; here it runs in the worker
-- processes of a Pool, over tasks some of which fail. `try/except` is a
-- pcall; logging.error with logging's default set-up writes
-- "ERROR:root:<message>" on stderr, which logging_error() does (with the
-- worker's PID in the message, to show where the error was caught). The
-- failing tasks give nil (None), the others their result, and the pool
-- goes on. For contrast, the same tasks without the try/except: Pool.map
-- raises the first error in the parent and the results are lost.
local multiprocessing = require "multiprocessing"

-- logging.error(msg), logging's default format.
local function logging_error(msg)
  io.stderr:write("ERROR:root:", msg, "\n")
  io.stderr:flush()
end

-- The work: the inverse of a number; a task that is not a number, or is
-- zero, fails.
local function process_task(task)
  if type(task) ~= "number" then
    error(TypeError(("unsupported operand type(s) for /: 'int' and '%s'"):format(type(task))))
  end
  if task == 0 then error(ValueError("division par zéro")) end
  return 1 / task
end

local function worker_securise(task)
  local ok, resultat = pcall(process_task, task)
  if ok then return resultat end
  logging_error(("Erreur dans worker (PID %d): %s"):format(os.getpid(), tostring(resultat)))
  return nil
end

if __name__ == "__main__" then
  local taches = {1, 2, 0, 4, "cinq", 8}
  print(("parent : PID %d"):format(os.getpid()))
  local pool <close> = multiprocessing.Pool{processes = 2}

  local resultats = pool:map(worker_securise, taches)
  local affiches, echecs = {}, 0
  for i = 1, #taches do
    affiches[i] = resultats[i] == nil and "None" or tostring(resultats[i])
    if resultats[i] == nil then echecs = echecs + 1 end
  end
  print("avec worker_securise : [" .. table.concat(affiches, ", ") .. "]")
  print(("%d tâches sur %d ont échoué, les autres ont leur résultat"):format(echecs, #taches))

  local ok, err = pcall(pool.map, pool, process_task, taches)
  print("sans try/except : " .. (ok and "pas d'erreur ?!" or ("map lève " .. tostring(err))))
end
