/*
** decode.c: a libFuzzer target for the decoder of _multiprocessing's
** serializer (stdlib/multiprocessing/serialize.c), `make fuzz`.
**
** An input is a message, handed to _multiprocessing.loads; or, if its
** first byte is 'F', the bytes that follow arrive on a connection (a
** socket pair whose writer then hangs up), read frame by frame with recv()
** and recv_bytes(maxlength) in turn until an error: frame headers and
** lengths are fuzzed too. Any outcome but values or Lua errors (a crash, a
** sanitizer report, a huge allocation, a hang) is a finding.
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
#include <unistd.h>
#include <sys/socket.h>

#include <lua.h>
#include <lauxlib.h>

#include "gilua.h"

static lua_State *L;
static int loads_ref = LUA_NOREF, frames_ref = LUA_NOREF;


/* Calls of functions that came from a message are refused. */
static void hook (lua_State *H, lua_Debug *ar) {
  if (lua_getinfo(H, "S", ar) && strcmp(ar->source, "=?") == 0)
    luaL_error(H, "a decoded function was called");
}


static const char sandbox[] =
  "local Object = require 'gilua.class'\n"
  "local mp = require '_multiprocessing'\n"
  "local Connection = mp.Connection\n"
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
  /* frames(fd): reads the connection until it fails */
  "local function frames(fd)\n"
  "  local c <close> = Connection(fd, fd)\n"
  "  local i = 0\n"
  "  while true do\n"
  "    i = i + 1\n"
  "    local ok, err\n"
  "    if i % 2 == 1 then ok, err = pcall(c.recv, c)\n"
  "    else ok, err = pcall(c.recv_bytes, c, 64) end\n"
  "    if not ok and not ValueError:is(err) then break end\n"
  "  end\n"
  "end\n"
  "return mp.loads, frames\n";


int LLVMFuzzerInitialize (int *argc, char ***argv) {
  (void)argc; (void)argv;
  L = gilua_open();
  if (L == NULL) { fprintf(stderr, "decode: gilua_open failed\n"); abort(); }
  if (luaL_loadstring(L, sandbox) != LUA_OK || lua_pcall(L, 0, 2, 0) != LUA_OK) {
    fprintf(stderr, "decode: sandbox: %s\n", lua_tostring(L, -1));
    abort();
  }
  frames_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  loads_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_sethook(L, hook, LUA_MASKCALL, 0);
  return 0;
}


int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  static unsigned long runs;
  int top = lua_gettop(L);
  if (size > 0 && data[0] == 'F') {
    int sv[2];
    size_t off = 1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) abort();
    while (off < size) {   /* inputs are far smaller than a socket's buffer */
      ssize_t w = write(sv[1], data + off, size - off);
      if (w <= 0) abort();
      off += (size_t)w;
    }
    close(sv[1]);
    lua_rawgeti(L, LUA_REGISTRYINDEX, frames_ref);
    lua_pushinteger(L, sv[0]);     /* the connection closes it */
    (void)lua_pcall(L, 1, 0, 0);
  }
  else {
    lua_rawgeti(L, LUA_REGISTRYINDEX, loads_ref);
    lua_pushlstring(L, (const char *)data, size);
    (void)lua_pcall(L, 1, 1, 0);    /* a value or an error: both are fine */
  }
  lua_settop(L, top);
  if (++runs % 4096 == 0) lua_gc(L, LUA_GCCOLLECT);  /* finalizers too */
  return 0;
}
