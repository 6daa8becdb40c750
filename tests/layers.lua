#!/usr/bin/env gilua
-- The layering rule (docs/internals.md): include/ <- gil/ <- vm/ <- stdlib/
-- <- repl/, no circle between files, and libgilua.so exports gilua.h alone.
-- tools/check_layers.lua checks it on the real tree and build; the same
-- checker must fail on a tree with a deliberate violation of each kind.
local t = require "tap"

local gilua = os.getenv("GILUA") or "build/gilua"
local build = os.getenv("GILUA_BUILD") or gilua:match("^(.*)/[^/]*$") or "build"
local q = t.shquote

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

local function check(args)
  return sh(q(gilua) .. " tools/check_layers.lua " .. args)
end

-- The real tree.
do
  local ok, out = check("--src . --obj " .. q(build .. "/obj") .. " --lib " ..
                        q(build .. "/libgilua.so"))
  t.ok(ok, "the tree and its build keep the layering rule")
  t.like(out, "layers: %d+ files, %d+ objects, %d+ calls between files, %d+ exports: ok",
         "the checker says what it looked at")
  if not ok then t.diag(out) end
end

do
  local ok, out = sh("nm -D --defined-only " .. q(build .. "/libgilua.so"))
  local n, others = 0, {}
  for sym in out:gmatch("%x+ %a ([%w_]+)") do
    n = n + 1
    if not sym:match("^gilua_") then others[#others + 1] = sym end
  end
  t.ok(ok and n >= 20, "libgilua.so exports the functions of gilua.h (" .. n .. ")")
  t.is(table.concat(others, " "), "", "and nothing that is not gilua_*")
end

do
  local ok, out = sh("grep -h '#include \"' repl/*.c repl/*.h")
  local extra = {}
  for name in out:gmatch('#include "([^"]+)"') do
    if name ~= "gilua.h" and name ~= "repl.h" then extra[#extra + 1] = name end
  end
  t.ok(ok, "read repl/'s includes")
  t.is(table.concat(extra, " "), "", "repl/ includes no project header but gilua.h")
end

-- docs/internals.md lists every C source and header with its purpose.
do
  local f = assert(io.open("docs/internals.md"))
  local doc = f:read("a")
  f:close()
  local ok, out = sh("find include gil vm stdlib repl tools -name '*.[ch]' | sort")
  local missing = {}
  for path in out:gmatch("[^\n]+") do
    if not doc:find("`" .. path .. "`", 1, true) then missing[#missing + 1] = path end
  end
  t.ok(ok, "listed the sources")
  t.is(table.concat(missing, " "), "", "docs/internals.md has a row for every C source and header")
end

-- Deliberate violations, in a scratch copy.
local tmp = os.tmpname()
os.remove(tmp)
assert(sh("mkdir -p " .. q(tmp) .. " && cp -r include gil vm stdlib repl " .. q(tmp) ..
          " && cp -r " .. q(build .. "/obj") .. " " .. q(tmp .. "/obj")))

local function append(path, text)
  local f = assert(io.open(tmp .. "/" .. path, "a"))
  f:write(text)
  f:close()
end

local function restore(path)
  assert(sh("cp " .. q(path) .. " " .. q(tmp .. "/" .. path)))
end

local function compile(rel, code)
  local c = tmp .. "/scratch.c"
  local f = assert(io.open(c, "w"))
  f:write(code)
  f:close()
  local ok, out = sh("mkdir -p " .. q((tmp .. "/obj/" .. rel):match("^(.*)/")) ..
                     " && cc -c " .. q(c) .. " -o " .. q(tmp .. "/obj/" .. rel))
  assert(ok, out)
end

do
  append("gil/gil_time.c", '\n#include "gilua_vm.h"\n')
  local ok, out = check("--src " .. q(tmp))
  t.ok(not ok, "an include from gil/ of a vm/ header fails the check")
  t.like(out, "gil/gil_time.c:%d+: includes vm/gilua_vm.h, a layer above %(gil includes vm%)",
         "and names the file, the line and the header")
  restore("gil/gil_time.c")
end

do
  append("repl/main.c", '\n#include "gil.h"\n')
  local ok, out = check("--src " .. q(tmp))
  t.ok(not ok, "repl/ including an internal header fails the check")
  t.like(out, "repl/main.c:%d+: includes gil/gil.h: repl/ uses gilua.h alone", "and says why")
  restore("repl/main.c")
end

do
  local ok = check("--src " .. q(tmp))
  t.ok(ok, "the restored scratch copy passes again")
end

do
  compile("gil/scratch_up.o", "int gilua_raise(void);\nint up(void) { return gilua_raise(); }\n")
  local ok, out = check("--src " .. q(tmp) .. " --obj " .. q(tmp .. "/obj"))
  t.ok(not ok, "a call from gil/ to a function of vm/ fails the check")
  t.like(out, "gil/scratch_up%.c calls gilua_raise of vm/gilua_error%.c, a layer above",
         "and names the caller, the function and where it is defined")
  os.remove(tmp .. "/obj/gil/scratch_up.o")
end

do
  compile("vm/scratch_a.o", "void scratch_b(void);\nvoid scratch_a(void) { scratch_b(); }\n")
  compile("vm/scratch_b.o", "void scratch_a(void);\nvoid scratch_b(void) { scratch_a(); }\n")
  local ok, out = check("--src " .. q(tmp) .. " --obj " .. q(tmp .. "/obj"))
  t.ok(not ok, "two files calling each other fail the check")
  t.like(out, "call each other in a circle: vm/scratch_a%.c, vm/scratch_b%.c", "and are named")
  os.remove(tmp .. "/obj/vm/scratch_a.o")
  os.remove(tmp .. "/obj/vm/scratch_b.o")
end

do
  local so = tmp .. "/leak.so"
  local c = tmp .. "/leak.c"
  local f = assert(io.open(c, "w"))
  f:write("int gilua_open(void) { return 0; }\nint gil_leaked(void) { return 1; }\n")
  f:close()
  assert(sh("cc -shared -fPIC " .. q(c) .. " -o " .. q(so)))
  local ok, out = check("--src " .. q(tmp) .. " --lib " .. q(so))
  t.ok(not ok, "a library exporting a symbol gilua.h lacks fails the check")
  t.like(out, "exports gil_leaked, which include/gilua.h does not declare", "and names it")
  t.like(out, "declares gilua_close, which .- does not export", "a missing API function is named too")
end

sh("rm -rf " .. q(tmp))
t.done_testing()
