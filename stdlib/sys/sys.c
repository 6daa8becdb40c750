/*
** sys.c: the part of Python's sys that concerns threads: the switch
** interval, the check interval of Python 2 (for the GIL policy "old"),
** gilua's GIL policy, plus argv and platform.
*/
#include <limits.h>

#include "gilua_vm.h"


static int s_setswitchinterval (lua_State *L) {
  double s;
  luaL_checknumber(L, 1);
  s = gilua_timeout(L, 1, "sys.setswitchinterval", "interval", GILUA_NEG_ZERO);
  if (!(s > 0)) return gilua_raise(L, "ValueError", "switch interval must be strictly positive");
  gilua_setswitchinterval(s);
  return 0;
}


static int s_getswitchinterval (lua_State *L) {
  lua_pushnumber(L, gilua_getswitchinterval());
  return 1;
}


/* Python 2's: instructions between two checks, under the policy old. */
static int s_setcheckinterval (lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  if (n < 1 || n > INT_MAX)
    return gilua_raise(L, "ValueError", "setcheckinterval: the interval must "
                       "be a whole number of instructions from 1 to %d, not %I",
                       INT_MAX, (lua_Integer)n);
  gilua_setcheckinterval((int)n);
  return 0;
}


static int s_getcheckinterval (lua_State *L) {
  lua_pushinteger(L, gilua_getcheckinterval());
  return 1;
}


static int s_setgilpolicy (lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  if (gilua_setgilpolicy(name) != 0) {
    luaL_Buffer b;
    int i;
    luaL_buffinit(L, &b);
    for (i = 0; gilua_gilpolicyname(i); i++) {
      if (i > 0) luaL_addstring(&b, ", ");
      luaL_addstring(&b, gilua_gilpolicyname(i));
    }
    luaL_pushresult(&b);
    return gilua_raise(L, "ValueError", "setgilpolicy: unknown GIL policy "
                       "'%s' (the policies are: %s)", name, lua_tostring(L, -1));
  }
  return 0;
}


static int s_getgilpolicy (lua_State *L) {
  lua_pushstring(L, gilua_getgilpolicy());
  return 1;
}


static const luaL_Reg funcs[] = {
  {"setswitchinterval", s_setswitchinterval},
  {"getswitchinterval", s_getswitchinterval},
  {"setcheckinterval", s_setcheckinterval},
  {"getcheckinterval", s_getcheckinterval},
  {"setgilpolicy", s_setgilpolicy},
  {"getgilpolicy", s_getgilpolicy},
  {NULL, NULL}
};


int luaopen_gilua_sys (lua_State *L) {
  int i, n;
  luaL_newlib(L, funcs);
  /* sys.argv: a 1-based array, the script first (Python's argv[0]). */
  lua_createtable(L, 4, 0);
  if (lua_getglobal(L, "arg") == LUA_TTABLE) {
    n = (int)luaL_len(L, -1);
    for (i = 0; i <= n; i++) {
      lua_geti(L, -1, i);
      lua_seti(L, -3, i + 1);
    }
  }
  lua_pop(L, 1);
  lua_setfield(L, -2, "argv");
  lua_pushliteral(L, "linux");
  lua_setfield(L, -2, "platform");
  return 1;
}
