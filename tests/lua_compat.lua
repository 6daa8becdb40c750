#!/usr/bin/env gilua
--[[
lua_compat.lua: gilua is a drop-in for the lua5.4 command. Each case runs
in lua5.4 and in gilua, with the same arguments, environment, standard
input and working directory, and their stdout, stderr and exit status
must be the same.

What is not compared, and why:
  * the program name: both commands are started under the same argv[0]
    ("lua", with bash's exec -a), and both print argv[0] where lua does,
    so nothing needs replacing;
  * the version line (-v, -i, the banner): lua5.4's copyright line and
    gilua's own line ("gilua 0.1 (Lua 5.4.x) with a Global Interpreter
    Lock") are each replaced by <version>, after checking what they are;
  * the usage message after a bad option: gilua's begins with lua's,
    word for word, then lists gilua's own options; the test checks both;
  * error({}): gilua prints lua's message without the traceback (see the
    case).
]]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local t = require "tap"

local gilua = t.gilua()
local q = t.shquote

local LUA = "lua5.4"
if not os.execute("command -v " .. LUA .. " >/dev/null 2>&1") then
  -- lua5.4 is a dependency of the suite (make deps): its absence fails.
  t.ok(false, "lua5.4 is installed (apt-get install lua5.4)")
  t.done_testing()
  return
end

local dir = io.popen("mktemp -d"):read("l")

local function write(name, text)
  local f = assert(io.open(dir .. "/" .. name, "wb"))
  f:write(text)
  f:close()
end

write("args.lua", [[
print("...", select("#", ...), ...)
for i = -3, #arg do io.write(tostring(arg[i]), " ") end
print()
]])
write("fail.lua", "print('before')\nlocal x = nil\nx.field = 1\n")
write("syntax.lua", "print('a'\n")
write("exit.lua", "io.write('bye\\n') os.exit(3)\n")
write("-", "print('a file named -', ...)\n")
write("init.lua", "print('init file', arg[0])\ninit_ran = true\n")
write("initfail.lua", "error('from the init file')\n")
os.execute("mkdir -p " .. q(dir .. "/mods") .. " " .. q(dir .. "/other"))
write("mods/mymod.lua", "print('loading', ...)\nreturn {name = 'mymod'}\n")
write("mods/failmod.lua", "error('cannot load me')\n")
write("other/mymod.lua", "return {name = 'other mymod'}\n")
write("repl.txt", [[
y + 1
function g()
return 5 end
g()
"a string"
42, nil, "x"
=1 + 1
error("at the prompt")
error(setmetatable({}, {__tostring = function() return "TS" end}))
setmetatable({}, {__tostring = function() return "tostring'd" end})
local z = 3
z
_PROMPT = "P "
print(10)
]])

local ENV_VARS = { "LUA_INIT", "LUA_INIT_5_4", "LUA_PATH", "LUA_PATH_5_4",
                   "LUA_CPATH", "LUA_CPATH_5_4" }

-- Runs 'prog' as "lua" with the case's arguments, environment and input.
local function run(prog, case)
  local line = { "cd", q(dir), "&&", "env" }
  for _, v in ipairs(ENV_VARS) do line[#line + 1] = "-u " .. v end
  for k, v in pairs(case.env or {}) do line[#line + 1] = q(k .. "=" .. v) end
  line[#line + 1] = "bash -c 'exec -a lua \"$0\" \"$@\"'"
  line[#line + 1] = q(prog)
  for _, a in ipairs(case.args) do line[#line + 1] = q(a) end
  line[#line + 1] = "<" .. (case.stdin and q(dir .. "/" .. case.stdin) or "/dev/null")
  local outp, errp = t.tmpname(), t.tmpname()
  local _, how, code = os.execute("{ " .. table.concat(line, " ") .. " ; } >"
                                  .. q(outp) .. " 2>" .. q(errp))
  local out, err = t.slurp(outp) or "", t.slurp(errp) or ""
  os.remove(outp)
  os.remove(errp)
  return { status = (how == "signal") and 128 + code or code,
           out = out, err = err }
end

---------------------------------------------------------- the version lines

local lua_v = run(LUA, { args = { "-v" } }).out:match("^[^\n]*")
local gilua_v = run(gilua, { args = { "-v" } }).out:match("^[^\n]*")
local release = lua_v:match("^(Lua 5%.4%.%d+)  Copyright") or "?"
t.ok(release ~= "?", "lua5.4 -v prints Lua's copyright line", lua_v)
t.like(gilua_v, "^gilua [%d.]+ %(" .. release:gsub("%.", "%%.") ..
                "%) with a Global Interpreter Lock$",
       "gilua -v names gilua and the same Lua release")

local function plain(s) return (s:gsub("%p", "%%%0")) end

local function normalise(r, vline)
  local function fix(s) return (s:gsub(plain(vline), "<version>")) end
  return { status = r.status, out = fix(r.out), err = fix(r.err) }
end

local function show(r)
  return ("status %s\n-- stdout\n%s-- stderr\n%s"):format(r.status, r.out, r.err)
end

------------------------------------------------------------------ the cases

local HELLO = "print('hello', ...)"
local cases = {
  -- -e, -l, -i, -v, -W, --, -
  { "-e", args = { "-e", "print(6 * 7)" } },
  { "-e glued to its code", args = { "-eprint(1, 2)" } },
  { "several -e in order", args = { "-e", "x = 1", "-e", "print(x + 1)" } },
  { "an error in -e", args = { "-e", "error('kaput')", "-e", "print('not run')" } },
  { "a syntax error in -e", args = { "-e", "print(" } },
  { "-l mod", env = { LUA_PATH = "mods/?.lua" },
    args = { "-l", "mymod", "-e", "print(mymod.name)" } },
  { "-lmod glued", env = { LUA_PATH = "mods/?.lua" },
    args = { "-lmymod", "-e", "print(mymod.name)" } },
  { "-l g=mod", env = { LUA_PATH = "mods/?.lua" },
    args = { "-l", "m=mymod", "-e", "print(m.name, mymod)" } },
  { "-l of a missing module", args = { "-l", "nosuchmod", "-e", "print('not run')" } },
  { "-l of a module that fails", env = { LUA_PATH = "mods/?.lua" },
    args = { "-l", "failmod" } },
  { "-l and -e in command-line order", env = { LUA_PATH = "mods/?.lua" },
    args = { "-e", "print(mymod)", "-l", "mymod", "-e", "print(mymod.name)" } },
  { "-v", args = { "-v" } },
  { "-v with -e", args = { "-v", "-e", "print('after')" } },
  { "-v with a script", args = { "-v", "args.lua", "x" } },
  { "-W", args = { "-W", "-e", "warn('one', 'two')" } },
  { "warnings off without -W", args = { "-e", "warn('one')" } },
  { "-W at its place among -e", args = { "-e", "warn('before')", "-W",
                                         "-e", "warn('after')",
                                         "-e", "warn('@off')", "-e", "warn('off')" } },
  { "-i on a pipe", args = { "-i" }, stdin = "repl.txt" },
  { "-i after -e", args = { "-e", "y = 20", "-i" }, stdin = "repl.txt" },
  { "-i after a script", args = { "-i", "args.lua", "a" }, stdin = "repl.txt" },
  { "-i after a failed script", args = { "-i", "fail.lua" }, stdin = "repl.txt" },
  { "-i after a failed -e", args = { "-e", "error('no')", "-i" }, stdin = "repl.txt" },
  { "--", args = { "--", "args.lua", "-e", "x" } },
  { "-- alone", args = { "-e", "print(#arg, arg[1])", "--" } },
  { "-- then -: a file named -", args = { "--", "-", "x" } },
  { "-: stdin as the script", args = { "-", "p", "q" }, stdin = "args.lua" },
  { "- after -e", args = { "-e", "print('first')", "-" }, stdin = "args.lua" },
  { "stdin without a terminal", args = {}, stdin = "args.lua" },
  { "an error in stdin", args = { "-" }, stdin = "fail.lua" },
  { "-v and stdin: stdin not run", args = { "-v" }, stdin = "args.lua" },
  -- scripts
  { "a script with arguments", args = { "args.lua", "a", "b c", "" } },
  { "options before a script", args = { "-e", "print(arg[-1], arg[-2], arg[0])", "args.lua", "x" } },
  { "options after a script belong to it", args = { "args.lua", "-x", "-e", "--" } },
  { "arg without a script", args = { "-e", "print(arg[0], arg[1], arg[2], arg[-1])" } },
  { "the script's ... comes from arg", args = { "-e", "arg[1] = 'changed' arg[3] = 'added'", "args.lua", "a", "b" } },
  { "arg not a table", args = { "-e", "arg = 42", "args.lua" } },
  { "an error in a script", args = { "fail.lua" } },
  { "a syntax error in a script", args = { "syntax.lua" } },
  { "a missing script", args = { "no-such-script.lua" } },
  { "os.exit in a script", args = { "exit.lua" } },
  { "os.exit(false)", args = { "-e", "os.exit(false)" } },
  { "os.exit(true)", args = { "-e", "os.exit(true)" } },
  { "error objects: nil", args = { "-e", "error(nil)" } },
  { "error objects: a number", args = { "-e", "error(42)" } },
  { "error objects: __tostring", args = { "-e", "error(setmetatable({}, {__tostring = function() return 'custom' end}))" } },
  -- gilua_pcall keeps a table as it is (exception objects carry their own
  -- traceback), so a plain table comes out without one: the message and
  -- the status are lua's, the traceback is missing.
  { "error objects: a table", args = { "-e", "error({})" }, no_traceback = true },
  { "error objects: a boolean", args = { "-e", "error(true)" } },
  { "error with level 0", args = { "-e", "error('plain', 0)" } },
  -- LUA_INIT
  { "LUA_INIT code", env = { LUA_INIT = "print('init', arg[0]) x = 5" },
    args = { "-e", "print(x)" } },
  { "LUA_INIT_5_4 wins over LUA_INIT",
    env = { LUA_INIT = "print('plain')", LUA_INIT_5_4 = "print('versioned')" },
    args = { "-e", "print('main')" } },
  { "LUA_INIT=@file", env = { LUA_INIT = "@init.lua" },
    args = { "-e", "print(init_ran)" } },
  { "LUA_INIT runs before -v's -e and after the version", env = { LUA_INIT = HELLO },
    args = { "-v", "-e", "print('e')" } },
  { "LUA_INIT with a script", env = { LUA_INIT_5_4 = HELLO }, args = { "args.lua", "1" } },
  { "LUA_INIT before stdin", env = { LUA_INIT = HELLO }, args = {}, stdin = "args.lua" },
  { "an error in LUA_INIT", env = { LUA_INIT = "error('in init')" },
    args = { "-e", "print('not run')" } },
  { "an error in LUA_INIT_5_4", env = { LUA_INIT_5_4 = "local x = nil; x()" },
    args = { "args.lua" } },
  { "a syntax error in LUA_INIT", env = { LUA_INIT = "print(" }, args = { "-e", "print(1)" } },
  { "an error in LUA_INIT=@file", env = { LUA_INIT = "@initfail.lua" }, args = { "-v" } },
  { "LUA_INIT=@missing file", env = { LUA_INIT = "@no-such-init.lua" }, args = { "-e", "print(1)" } },
  { "-W does not cover LUA_INIT", env = { LUA_INIT = "warn('init')" },
    args = { "-W", "-e", "warn('e')" } },
  -- paths
  { "LUA_PATH", env = { LUA_PATH = "mods/?.lua" },
    args = { "-e", "print(package.path) print(require('mymod').name)" } },
  { "LUA_PATH_5_4 wins over LUA_PATH", env = { LUA_PATH = "other/?.lua", LUA_PATH_5_4 = "mods/?.lua" },
    args = { "-e", "print(package.path) print(require('mymod').name)" } },
  { "';;' in LUA_PATH adds the default path", env = { LUA_PATH = "mods/?.lua;;" },
    args = { "-e", "print(package.path)" } },
  { "';;' alone", env = { LUA_PATH = ";;" }, args = { "-e", "print(package.path)" } },
  { "no LUA_PATH: the default path", args = { "-e", "print(package.path)" } },
  { "LUA_CPATH", env = { LUA_CPATH = "./?.so;/nowhere/?.so" },
    args = { "-e", "print(package.cpath)" } },
  { "LUA_CPATH_5_4 wins over LUA_CPATH", env = { LUA_CPATH = "/a/?.so", LUA_CPATH_5_4 = "/b/?.so;;" },
    args = { "-e", "print(package.cpath)" } },
  { "a missing module lists the paths tried", env = { LUA_PATH = "mods/?.lua", LUA_CPATH = "mods/?.so" },
    args = { "-e", "require 'absent'" } },
  -- -E
  { "-E ignores LUA_PATH and LUA_CPATH",
    env = { LUA_PATH = "mods/?.lua", LUA_PATH_5_4 = "other/?.lua", LUA_CPATH = "/x/?.so", LUA_CPATH_5_4 = "/y/?.so" },
    args = { "-E", "-e", "print(package.path) print(package.cpath) print(pcall(require, 'mymod'))" } },
  { "-E ignores LUA_INIT", env = { LUA_INIT = "print('init ran')", LUA_INIT_5_4 = "print('init 5.4 ran')" },
    args = { "-E", "-e", "print('main')" } },
  { "-E leaves os.getenv alone", env = { LUA_PATH = "mods/?.lua" },
    args = { "-E", "-e", "print(os.getenv('LUA_PATH'))" } },
  -- bad command lines: the usage
  { "an unrecognized option", args = { "-x" }, usage = true },
  { "an unrecognized option after good ones", args = { "-e", "print(1)", "-y", "s.lua" }, usage = true },
  { "a flag with extra characters", args = { "-ix" }, usage = true },
  { "-v with extra characters", args = { "-vx" }, usage = true },
  { "-E with extra characters", args = { "-Ex" }, usage = true },
  { "-W with extra characters", args = { "-Wall" }, usage = true },
  { "-- with extra characters", args = { "--x" }, usage = true },
  { "-e without its argument", args = { "-e" }, usage = true },
  { "-l without its argument", args = { "-l" }, usage = true },
  { "-e followed by an option", args = { "-e", "-i" }, usage = true },
  { "a bad option stops everything", env = { LUA_INIT = HELLO },
    args = { "-e", "print('not run')", "-z" }, usage = true },
}

for _, case in ipairs(cases) do
  local name = case[1]
  local l = normalise(run(LUA, case), lua_v)
  local g = normalise(run(gilua, case), gilua_v)
  if case.usage then
    local head, tail = g.err:sub(1, #l.err), g.err:sub(#l.err + 1)
    t.ok(l.status == 1 and g.status == 1 and l.out == "" and g.out == "" and
         l.err:find("\nusage: lua ", 1, true) and head == l.err and
         tail:find("^gilua's own options:\n") and
         tail:find("\n  %-%-switch%-interval=S ") and
         not tail:find("\n[^ ][^\n]*\n", #"gilua's own options:"),
         name .. ": lua's message and usage, then gilua's own options",
         show(l) .. "---- gilua:\n" .. show(g))
  else
    if case.no_traceback then l.err = l.err:gsub("\nstack traceback:.*", "\n") end
    t.is(show(g), show(l), name)
  end
end

os.execute("rm -rf " .. q(dir))
t.done_testing()
