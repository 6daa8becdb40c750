--[[
check_layers.lua: checks the layering rule of libgilua's sources.

    lua5.4 tools/check_layers.lua [--src DIR] [--obj DIR] [--lib FILE]

Layers go one way: include/ (0) <- gil/ (1) <- vm/ (2) <- stdlib/* (3) <-
repl/ (4). A file includes and calls only its own layer and those below.

--src DIR   the source tree (default "."): every `#include "..."` of a .c or
            .h file under include/, gil/, vm/, stdlib/ and repl/ must name a
            header of the same layer or a lower one; repl/ includes no
            project header but include/gilua.h and its own.
--obj DIR   the object tree of a build (build/obj): every call (an undefined
            symbol of one object defined by another) must go to the same
            layer or a lower one, and no files may call each other in a
            circle, directly or through others.
--lib FILE  libgilua.so: it must export exactly the functions that
            include/gilua.h declares (and luaopen_* if any).

Prints each violation and exits 1 if there is any, else prints a summary
and exits 0.
]]

local LAYERS = {include = 0, gil = 1, vm = 2, stdlib = 3, repl = 4, gen = 0}
local NAMES = {[0] = "include", "gil", "vm", "stdlib", "repl"}

local src, obj, lib = ".", nil, nil
do
  local i = 1
  while arg[i] do
    local a, v = arg[i], arg[i + 1]
    if a == "--src" then src = v
    elseif a == "--obj" then obj = v
    elseif a == "--lib" then lib = v
    else io.stderr:write("check_layers: unknown argument '", a, "'\n"); os.exit(2) end
    if v == nil then io.stderr:write("check_layers: ", a, " needs a value\n"); os.exit(2) end
    i = i + 2
  end
end

local problems = {}
local function problem(fmt, ...) problems[#problems + 1] = string.format(fmt, ...) end

local function lines(cmd)
  local p = assert(io.popen(cmd))
  local t = {}
  for l in p:lines() do t[#t + 1] = l end
  local ok, _, code = p:close()
  if not ok then
    io.stderr:write("check_layers: '", cmd, "' failed (", tostring(code), ")\n")
    os.exit(2)
  end
  return t
end

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- The layer of a path relative to the tree ("vm/gilua_io.c" -> 2).
local function layer(rel) return LAYERS[rel:match("^([^/]+)/")] end

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

--[[ Includes. A quoted include is looked up as the compiler does: the
including file's folder first, then the -I folders of the Makefile. ]]
local SEARCH = {"include", "vm", "gil"}
local nfiles = 0

local function resolve(rel, name)
  local dir = rel:match("^(.*)/[^/]*$")
  if exists(src .. "/" .. dir .. "/" .. name) then return dir .. "/" .. name end
  for _, d in ipairs(SEARCH) do
    if exists(src .. "/" .. d .. "/" .. name) then return d .. "/" .. name end
  end
end

for _, path in ipairs(lines("cd " .. q(src) .. " && find include gil vm stdlib repl " ..
                            "-name '*.[ch]' | sort")) do
  nfiles = nfiles + 1
  local mine = layer(path)
  local n = 0
  for l in io.lines(src .. "/" .. path) do
    n = n + 1
    local name = l:match('^%s*#%s*include%s*"([^"]+)"')
    if name then
      local target = resolve(path, name)
      if target == nil then
        problem("%s:%d: includes \"%s\", which is not in the tree", path, n, name)
      else
        local theirs = layer(target)
        if theirs > mine then
          problem("%s:%d: includes %s, a layer above (%s includes %s)",
                  path, n, target, NAMES[mine], NAMES[theirs])
        elseif mine == LAYERS.repl and theirs ~= LAYERS.repl
               and target ~= "include/gilua.h" then
          problem("%s:%d: includes %s: repl/ uses gilua.h alone", path, n, target)
        end
      end
    end
  end
end

--[[ Calls, from the objects' symbol tables. ]]
local ncalls, nobjs = 0, 0
if obj then
  local defs, uses, objs = {}, {}, {}
  for _, o in ipairs(lines("cd " .. q(obj) .. " && find . -name '*.o' | sort")) do
    local rel = o:gsub("^%./", ""):gsub("%.o$", ".c")
    if layer(rel) then
      nobjs = nobjs + 1
      objs[#objs + 1] = rel
      uses[rel] = {}
      for _, l in ipairs(lines("nm " .. q(obj .. "/" .. o))) do
        local kind, sym = l:match("^%x*%s+(%a)%s+(%S+)$")
        if kind == "U" then uses[rel][#uses[rel] + 1] = sym
        elseif kind and kind:match("[TDBRGSVW]") then defs[sym] = rel end
      end
    end
  end
  local edges = {}
  for _, f in ipairs(objs) do
    edges[f] = {}
    local seen = {}
    for _, sym in ipairs(uses[f]) do
      local g = defs[sym]
      if g and g ~= f then
        ncalls = ncalls + 1
        if layer(g) > layer(f) then
          problem("%s calls %s of %s, a layer above (%s calls %s)", f, sym, g,
                  NAMES[layer(f)], NAMES[layer(g)])
        end
        if not seen[g] then seen[g] = true; edges[f][#edges[f] + 1] = g end
      end
    end
  end
  -- Circles: strongly connected components of more than one file (Tarjan).
  local index, low, onstack, stack, n = {}, {}, {}, {}, 0
  local function visit(v)
    n = n + 1; index[v] = n; low[v] = n
    stack[#stack + 1] = v; onstack[v] = true
    for _, w in ipairs(edges[v]) do
      if not index[w] then visit(w); low[v] = math.min(low[v], low[w])
      elseif onstack[w] then low[v] = math.min(low[v], index[w]) end
    end
    if low[v] == index[v] then
      local comp = {}
      repeat
        local w = table.remove(stack); onstack[w] = nil; comp[#comp + 1] = w
      until w == v
      if #comp > 1 then
        table.sort(comp)
        problem("these files call each other in a circle: %s", table.concat(comp, ", "))
      end
    end
  end
  for _, f in ipairs(objs) do if not index[f] then visit(f) end end
end

--[[ What the library exports. ]]
local nexports = 0
if lib then
  local api = {}
  for l in io.lines(src .. "/include/gilua.h") do
    local name = l:match("^GILUA_API[^(]-([%w_]+)%s*%(")
    if name then api[name] = true end
  end
  local found = {}
  for _, l in ipairs(lines("nm -D --defined-only " .. q(lib))) do
    local sym = l:match("^%x*%s+%a%s+(%S+)$")
    if sym and not sym:match("^_") then
      nexports = nexports + 1
      found[sym] = true
      if not api[sym] and not sym:match("^luaopen_") then
        problem("%s exports %s, which include/gilua.h does not declare", lib, sym)
      end
    end
  end
  for name in pairs(api) do
    if not found[name] then
      problem("include/gilua.h declares %s, which %s does not export", name, lib)
    end
  end
end

if #problems > 0 then
  for _, p in ipairs(problems) do io.stderr:write(p, "\n") end
  io.stderr:write(#problems, " violation(s) of the layering rule\n")
  os.exit(1)
end
print(string.format("layers: %d files, %d objects, %d calls between files, %d exports: ok",
                    nfiles, nobjs, ncalls, nexports))
