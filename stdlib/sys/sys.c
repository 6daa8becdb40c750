/*
** sys.c: the part of Python's sys that concerns threads: the switch
** interval, plus argv and platform.
*/
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


static const luaL_Reg funcs[] = {
  {"setswitchinterval", s_setswitchinterval},
  {"getswitchinterval", s_getswitchinterval},
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
