/*
** gilua_error.c: raising exception objects from C.
**
** Classes live in Lua (vm/lua/class.lua, exceptions.lua); C code names
** them, so that a module in C and one in Lua raise the very same
** classes, and `Class:is(err)` works whichever side raised.
*/
#include <stdio.h>

#include "gilua_vm.h"


void gilua_pushexception (lua_State *L, const char *cls, const char *msg) {
  lua_getfield(L, LUA_REGISTRYINDEX, "gilua.classes");
  if (lua_istable(L, -1) && lua_getfield(L, -1, cls) != LUA_TNIL) {
    lua_remove(L, -2);
    if (msg) lua_pushstring(L, msg);
    lua_call(L, msg ? 1 : 0, 1);
    return;
  }
  /* Runtime not loaded yet (or unknown class): a plain message still says
  ** what happened. */
  lua_pop(L, 2);
  if (msg) lua_pushfstring(L, "%s: %s", cls, msg);
  else lua_pushstring(L, cls);
}


int gilua_raise (lua_State *L, const char *cls, const char *fmt, ...) {
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    gilua_pushexception(L, cls, lua_tostring(L, -1));
  } else gilua_pushexception(L, cls, NULL);
  return lua_error(L);
}
