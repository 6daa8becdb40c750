/*
** decode.c: a libFuzzer target for the decoder of _multiprocessing's
** serializer (stdlib/multiprocessing/serialize.c), `make fuzz`.
**
** Each input is handed to _multiprocessing.loads as a received message
** would be; any outcome but a value or a Lua error (a crash, a sanitizer
** report, a huge allocation, a hang) is a finding.
**
** The decoder runs what a message names (a module's function, to rebuild
** a value) and loads the bytecode it carries, as Python's pickle does:
** messages come from trusted peers. So that fuzzing cannot run a shell
** command or close a descriptor by chance, the target decodes in a sandbox:
** every module function a message can name is a harmless stand-in (it
** returns its argument), `require` loads nothing new, and a hook refuses
** to run any function that came from a message (the loader names such
** chunks "=?"), including a finalizer set by a decoded metatable. What
** is fuzzed is the decoder itself: the checks of every tag, length,
** reference, upvalue, class and depth.
**
** The classes and the module that the seed messages use
** (tests/fuzz/seeds.lua) are defined here the same way.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include "gilua.h"

static lua_State *L;
static int loads_ref = LUA_NOREF;


/* Calls of functions that came from a message are refused. */
static void hook (lua_State *H, lua_Debug *ar) {
  if (lua_getinfo(H, "S", ar) && strcmp(ar->source, "=?") == 0)
    luaL_error(H, "a decoded function was called");
}


static const char sandbox[] =
  "local Object = require 'gilua.class'\n"
  "local mp = require '_multiprocessing'\n"
  /* what the seeds use: named and unnamed classes, a module */
  "local Point = Object:extend('fuzz.Point')\n"
  "local Sub = Point:extend()\n"
  "package.loaded.fuzzmod = { f = function(x) return x end, Sub = Sub,\n"
  "                           data = { 1, 2 } }\n"
  "local classes = getmetatable(Object).__classes\n"
  "local function stub(x) return x end\n"
  "local safe = {}\n"
  "for name, mod in pairs(package.loaded) do\n"
  "  if type(mod) == 'table' then\n"
  "    local copy = {}\n"
  "    for k, v in pairs(mod) do\n"
  "      if type(v) == 'function' then copy[k] = stub\n"
  "      elseif classes[v] then copy[k] = v end\n"
  "    end\n"
  "    safe[name] = copy\n"
  "  end\n"
  "end\n"
  "debug.getregistry()._LOADED = safe\n"
  "require = function(name) error('require is off in the fuzz target: ' .. tostring(name)) end\n"
  "return mp.loads\n";


int LLVMFuzzerInitialize (int *argc, char ***argv) {
  (void)argc; (void)argv;
  L = gilua_open();
  if (L == NULL) { fprintf(stderr, "decode: gilua_open failed\n"); abort(); }
  if (luaL_loadstring(L, sandbox) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
    fprintf(stderr, "decode: sandbox: %s\n", lua_tostring(L, -1));
    abort();
  }
  loads_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_sethook(L, hook, LUA_MASKCALL, 0);
  return 0;
}


int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  static unsigned long runs;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, loads_ref);
  lua_pushlstring(L, (const char *)data, size);
  (void)lua_pcall(L, 1, 1, 0);    /* a value or an error: both are fine */
  lua_settop(L, top);
  if (++runs % 4096 == 0) lua_gc(L, LUA_GCCOLLECT);  /* finalizers too */
  return 0;
}
