#!/usr/bin/env gilua
-- The samples of samples/queue/ and samples/futures/ run and show what
-- their course examples claim: producer/consumer orders and counts, the
-- thread pool's 0.3 s, each state of a Future, wait's done count. They
-- run at the same time (they mostly wait); a sample whose timing misses
-- runs once more.
local t = require "tap"
local S = require "support.samples"

local SQUARES = "0, 1, 4, 9, 16, 25, 36, 49, 64, 81"

S.check{
  { "queue/producteur_consommateur.lua", check = function(c, r)
      local want = {}
      for i = 0, 9 do want[#want + 1] = "Traitement: " .. i .. "\n" end
      c.is(r.out, table.concat(want), "producteur_consommateur: 0..9 in order, then nil ended the consumer")
    end },

  { "queue/communication_queue.lua", timed = true, check = function(c, r)
      local produced, done = 0, 0
      for _, p in ipairs{"Prod1", "Prod2"} do
        for i = 1, p == "Prod1" and 3 or 4 do
          local item = p .. "_item_" .. i
          produced = produced + S.count(r.out, "📦 Produit: " .. item .. "\n")
          done = done + S.count(r.out, "a terminé: " .. item .. "\n")
        end
      end
      c.is(produced, 7, "communication_queue: the two producers made 3 + 4 items")
      c.is(done, 7, "... each item processed once")
      c.like(r.out, "🎉 Tous les éléments ont été traités!\n", "... q.join() returned once all were done")
      c.is(S.count(r.out, ": timeout, arrêt"), 2, "... then both consumers stop on get(timeout=2): queue.Empty")
      local last_done = select(2, r.out:find(".*a terminé: "))
      local all = r.out:find("🎉", 1, true)
      c.ok(last_done and all and last_done < all, "... join() returned after the last task_done()")
      c.between(r.elapsed, 3, 8, "... in 4 to 6 s")
    end },

  { "futures/thread_pool.lua", timed = true, check = function(c, r)
      c.like(r.out, "submit : " .. SQUARES .. "\n", "thread_pool: submit then result(), in order")
      c.like(r.out, "map    : " .. SQUARES .. "\n", "... map, in order")
      local a, b = r.out:match("en ([%d.]+) s %(10 tâches.-en ([%d.]+) s")
      c.between(tonumber(a), 0.28, 0.5, "... 10 tasks of 0.1 s on 4 threads: about 0.3 s")
      c.between(tonumber(b), 0.28, 0.5, "... map too")
    end },

  { "futures/as_completed.lua", check = function(c, r)
      local n = 0
      for i, sq in r.out:gmatch("Tâche (%d) terminée: (%d+)\n") do
        n = n + 1
        c.is(tonumber(sq), tonumber(i) ^ 2 // 1, "as_completed: task " .. i .. "'s result")
      end
      c.is(n, 9, "... nine tasks done")
      c.like(r.out, "Tâche 3 échouée: ValueError: la tâche 3 a échoué\n", "... task 3 failed: result() raised its error")
      local first = r.out:match("^Tâche (%d)")
      c.ok(first ~= "0", "... as they complete, not in submission order (first: " .. tostring(first) .. ")")
    end },

  { "futures/wait_first_completed.lua", timed = true, check = function(c, r)
      local done, pending, secs = r.out:match("(%d+) terminé%(s%), (%d+) en cours, après ([%d.]+) s")
      c.like(r.out, "^terminé : résultat 0\n", "wait_first_completed: the first done is task 0 (0.1 s)")
      c.is(tonumber(done), 1, "... FIRST_COMPLETED: one done")
      c.is(tonumber(pending), 9, "... nine not done")
      c.between(tonumber(secs), 0.08, 0.3, "... after about 0.1 s")
      local all, secs2 = r.out:match("(%d+) terminés après ([%d.]+) s")
      c.is(tonumber(all), 10, "... then ALL_COMPLETED: ten")
      c.between(tonumber(secs2), 0.95, 1.3, "... after the longest, 1 s")
    end },

  { "futures/etat_future.lua", check = function(c, r)
      c.is(r.out, table.concat({
        "longue : running() = true, done() = false",
        "en attente : running() = false",
        "en attente : cancel() = true, cancelled() = true",
        "longue : cancel() = false (elle tourne déjà)",
        "longue : result(0.2) -> TimeoutError",
        "  rappel : la future est terminée, done() = true",
        "longue : result() = résultat de la longue tâche",
        "  rappel : la future est terminée, done() = true",
        "en erreur : exception() = ValueError: valeur invalide",
        "en erreur : result() lève ValueError: valeur invalide",
        "en attente : result() lève concurrent.futures.CancelledError",
      }, "\n") .. "\n", "etat_future: running, done, cancel, cancelled, result(timeout), callbacks, exception, in turn")
    end },
}

t.done_testing()
