-- A manager over TCP: one process serves a queue of tasks and a dict of
-- results; workers on other machines connect with the key, take tasks,
-- write results. Python's multiprocessing.managers.BaseManager, in Lua.
--
-- Here, on one machine over loopback (the server, two workers, a client
-- with a wrong key):
--
--     gilua samples/distributed/remote_manager.lua
--
-- On real hosts (docs/distributed.md): the same key in GILUA_AUTHKEY
-- everywhere, then
--
--     server$ gilua remote_manager.lua serve 0.0.0.0 50000      (Ctrl-C ends it)
--     hostA$  gilua remote_manager.lua worker server 50000 A
--     hostB$  gilua remote_manager.lua worker server 50000 B
--     any$    gilua remote_manager.lua report server 50000
--
-- The channel is authenticated, not encrypted: a trusted network, or a
-- tunnel (ssh -L 50000:localhost:50000 server).
local managers = require "multiprocessing.managers"
local queue = require "queue"

local TACHES, TAILLE = 24, 10000      -- tasks: count the primes in [a, a + TAILLE)

local function premiers(a, b)
  local n = 0
  for x = math.max(a, 2), b - 1 do
    local p = true
    for d = 2, math.floor(math.sqrt(x)) do
      if x % d == 0 then p = false; break end
    end
    if p then n = n + 1 end
  end
  return n
end

-- What the server shares, and how it is reached: the same typeids on both
-- sides; only the server gives the callables.
local Gestionnaire = managers.BaseManager:extend()

local function cle()
  local k = os.getenv("GILUA_AUTHKEY")
  if not k or k == "" then
    io.stderr:write("set GILUA_AUTHKEY to the key shared by the server and its workers\n")
    os.exit(2)
  end
  return k
end

local function serveur(hote, port)
  local taches, resultats = queue.Queue(), {}
  for i = 0, TACHES - 1 do taches:put(i * TAILLE) end
  Gestionnaire.register("taches", function() return taches end)
  Gestionnaire.register("resultats", function() return resultats end,
                        { proxytype = managers.DictProxy })
  local m = Gestionnaire{ address = { hote, port }, authkey = cle() }
  local s = m:get_server()
  print(("Serveur sur %s:%d, %d tâches"):format(s.address[1], s.address[2], TACHES))
  io.stdout:flush()
  s:serve_forever()
end

local function client(hote, port)
  Gestionnaire.register("taches")
  Gestionnaire.register("resultats")
  return Gestionnaire{ address = { hote, tonumber(port) }, authkey = cle() }:connect()
end

local function travailleur(hote, port, nom)
  local m = client(hote, port)
  local taches, resultats = m:taches(), m:resultats()
  local faites = 0
  while true do
    local ok, a = pcall(taches.get_nowait, taches)
    if not ok then break end                       -- queue.Empty: all taken
    resultats[a] = { n = premiers(a, a + TAILLE), par = nom }
    faites = faites + 1
  end
  print(("Travailleur %s: %d tâches"):format(nom, faites))
end

local function rapport(hote, port)
  local resultats = client(hote, port):resultats()
  local total, par, n = 0, {}, 0
  for _, r in pairs(resultats:copy()) do
    total = total + r.n
    par[r.par] = (par[r.par] or 0) + 1
    n = n + 1
  end
  local noms = {}
  for k, v in pairs(par) do noms[#noms + 1] = ("%s %d"):format(k, v) end
  table.sort(noms)
  print(("%d tâches sur %d faites (%s); %d nombres premiers sous %d"):format(
    n, TACHES, table.concat(noms, ", "), total, TACHES * TAILLE))
end

local mode = arg[1]
if mode == "serve" then
  serveur(arg[2] or "0.0.0.0", tonumber(arg[3]) or 50000)
elseif mode == "worker" then
  travailleur(arg[2], arg[3], arg[4] or "?")
elseif mode == "report" then
  rapport(arg[2], arg[3])
elseif mode == nil then
  -- Everything here: the server in a process of its own (start()), two
  -- workers as separate gilua commands (as on other machines), a report.
  local subprocess = require "subprocess"
  local mp = require "multiprocessing"
  local key = (mp.current_process().authkey:gsub(".", function(c)   -- random
    return ("%02x"):format(c:byte()) end))
  local taches, resultats = queue.Queue(), {}
  for i = 0, TACHES - 1 do taches:put(i * TAILLE) end
  Gestionnaire.register("taches", function() return taches end)
  Gestionnaire.register("resultats", function() return resultats end,
                        { proxytype = managers.DictProxy })
  local m <close> = Gestionnaire{ address = { "127.0.0.1", 0 }, authkey = key }
  m:start()
  local hote, port = m.address[1], m.address[2]
  print(("Serveur sur %s:%d (port choisi par le système), %d tâches"):format(hote, port, TACHES))
  local env = {}
  for _, v in ipairs{ "PATH", "LUA_PATH", "LUA_CPATH", "HOME" } do env[v] = os.getenv(v) end
  env.GILUA_AUTHKEY = key
  local exe = arg[-1] or "gilua"
  local ps = {}
  for _, nom in ipairs{ "A", "B" } do
    ps[#ps + 1] = subprocess.Popen({ exe, arg[0], "worker", hote, tostring(port), nom },
                                   { env = env, stdout = subprocess.PIPE })
  end
  for _, p in ipairs(ps) do io.write((p:communicate())) end
  env.GILUA_AUTHKEY = "pas la bonne clé"
  local r = subprocess.run({ exe, arg[0], "report", hote, tostring(port) },
                           { env = env, capture_output = true })
  print(("Un client sans la bonne clé: %s"):format(
    r.returncode ~= 0 and r.stderr:match("(multiprocessing%.AuthenticationError)") or "accepté ?!"))
  env.GILUA_AUTHKEY = key
  io.write(subprocess.run({ exe, arg[0], "report", hote, tostring(port) },
                          { env = env, capture_output = true }).stdout)
  print(("Attendu: %d nombres premiers sous %d"):format(premiers(0, TACHES * TAILLE), TACHES * TAILLE))
else
  io.stderr:write("usage: remote_manager.lua [serve HOST PORT | worker HOST PORT NAME | report HOST PORT]\n")
  os.exit(2)
end
