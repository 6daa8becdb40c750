#!/usr/bin/env gilua
-- The samples of samples/interpreters/ run and print what they promise.
local util = require "support.util"
util.tsan_allow_fork()      -- trois_facons.lua's processes start threads
local t = require "tap"

local gilua = os.getenv("GILUA") or "gilua"
local dir = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../samples/interpreters/"

local function run(name, args)
  local p = io.popen(gilua .. " " .. dir .. name .. " " .. (args or "") .. " 2>&1; echo \"status=$?\"")
  local out = p:read("a")
  p:close()
  return out
end

-- (smaller workloads than the samples' own: the figures are not checked
-- here, tests/interpreters.lua measures them)
local EXPECT = {
  ["trois_facons.lua"] = { args = "2000000",
    "séquentiel +%d+%.%d+s +1%.00x", "2 threads +%d", "2 interpréteurs +%d",
    "2 processus +%d", "un interpréteur +%d+ µs  %(%d+ fois moins qu'un processus%)",
    "un processus +%d+ µs", "un interpréteur +%d+ Kio  %(dont %d+ Kio de tas Lua%)" },
  ["file_entre_interpreteurs.lua"] = { "reçu de A : 1² = 1", "reçu de B : 5² = 25",
    "10 éléments reçus de 2 interpréteurs" },
  ["pool_map.lua"] = { args = "300000", "identiques :\ttrue", "InterpreterPoolExecutor +%d" },
}

local names = {}
for name in next, EXPECT do names[#names + 1] = name end
table.sort(names)
for _, name in ipairs(names) do
  local out = run(name, EXPECT[name].args)
  t.like(out, "status=0\n$", name .. " exits with 0")
  for _, pat in ipairs(EXPECT[name]) do
    t.like(out, pat, name .. ": " .. pat)
  end
end

t.done_testing()
