/*
** sys.c: the part of Python's sys that concerns threads: the switch
** interval, the check interval of Python 2 (for the GIL policy "old"),
** gilua's GIL policy, plus argv and platform.
*/
#include <limits.h>

#include <errno.h>
#include <string.h>

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
  int rc = gilua_setgilpolicy(name);
  if (rc != 0 && errno == EBUSY)
    return gilua_raise(L, "RuntimeError", "setgilpolicy: the deterministic "
                       "scheduler is on (sys.setscheduler{mode = \"off\"} first)");
  if (rc != 0) {
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


/* setscheduler{mode = "random"|"off", seed = n}: before threads start. */
static int s_setscheduler (lua_State *L) {
  const char *mode;
  lua_Integer seed = 0;
  luaL_checktype(L, 1, LUA_TTABLE);
  if (lua_getfield(L, 1, "mode") != LUA_TSTRING)
    return gilua_raise(L, "TypeError", "setscheduler: 'mode' must be a string "
                       "(\"random\" or \"off\"), not %s", luaL_typename(L, -1));
  mode = lua_tostring(L, -1);
  if (lua_getfield(L, 1, "seed") != LUA_TNIL) {
    if (!lua_isinteger(L, -1))
      return gilua_raise(L, "TypeError", "setscheduler: 'seed' must be an "
                         "integer, not %s", luaL_typename(L, -1));
    seed = lua_tointeger(L, -1);
  }
  if (gilua_setscheduler(mode, (unsigned long long)seed) != 0) {
    if (errno == EBUSY)
      return gilua_raise(L, "RuntimeError", "setscheduler: threads are "
                         "running already (set it before any thread starts)");
    return gilua_raise(L, "ValueError", "setscheduler: unknown mode '%s' "
                       "(the modes are: random, off)", mode);
  }
  return 0;
}


/* getscheduler(): {mode = "random", seed = n} or {mode = "off"} */
static int s_getscheduler (lua_State *L) {
  unsigned long long seed;
  const char *mode = gilua_getscheduler(&seed);
  lua_createtable(L, 0, 2);
  lua_pushstring(L, mode);
  lua_setfield(L, -2, "mode");
  if (strcmp(mode, "off") != 0) {
    lua_pushinteger(L, (lua_Integer)seed);
    lua_setfield(L, -2, "seed");
  }
  return 1;
}


static const luaL_Reg funcs[] = {
  {"setscheduler", s_setscheduler},
  {"getscheduler", s_getscheduler},
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
