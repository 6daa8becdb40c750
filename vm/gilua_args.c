/*
** gilua_args.c: Python-style arguments in C: positional, or one options
** table standing for keyword arguments (DESIGN: "Keyword arguments become
** one options table; common positional forms stay").
*/
#include "gilua_vm.h"


void gilua_args_init (gilua_args *a, lua_State *L, int first) {
  a->L = L;
  a->first = first;
  a->opts = 0;
  /* One plain table (no metatable) in first place, nothing after it. */
  if (lua_type(L, first) == LUA_TTABLE && lua_gettop(L) == first) {
    if (lua_getmetatable(L, first)) lua_pop(L, 1);
    else a->opts = 1;
  }
}


int gilua_arg (gilua_args *a, int pos, const char *name) {
  if (a->opts) return lua_getfield(a->L, a->first, name);
  lua_pushvalue(a->L, a->first + pos);
  return lua_type(a->L, -1);
}


int gilua_arg_bool (gilua_args *a, int pos, const char *name, int def) {
  int t = gilua_arg(a, pos, name), v = t == LUA_TNIL ? def : lua_toboolean(a->L, -1);
  lua_pop(a->L, 1);
  return v;
}


double gilua_arg_timeout (gilua_args *a, int pos, const char *name) {
  double t;
  gilua_arg(a, pos, name);
  t = gilua_timeout(a->L, -1, NULL, name, GILUA_NEG_ERROR);
  lua_pop(a->L, 1);
  return t;
}


void gilua_arg_block (lua_State *L, int first, int *block, double *timeout) {
  gilua_args a;
  *block = 1;
  *timeout = -1;
  if (lua_gettop(L) < first) return;  /* nothing: the fast path */
  gilua_args_init(&a, L, first);
  *block = gilua_arg_bool(&a, 0, "block", 1);
  *timeout = gilua_arg_timeout(&a, 1, "timeout");
}


/*
** {==================================================================
** Timeouts: one rule for every wait
** ===================================================================
*/

/* "Lock.acquire(): 'timeout' ..." or "'timeout' ..." */
static int bad (lua_State *L, const char *cls, const char *fname,
                const char *argname, const char *what) {
  return gilua_raise(L, cls, "%s%s'%s' %s", fname ? fname : "",
                     fname ? "(): " : "", argname, what);
}


double gilua_timeout (lua_State *L, int idx, const char *fname,
                      const char *argname, int negative) {
  int isnum;
  double t;
  if (argname == NULL) argname = "timeout";
  if (lua_isnoneornil(L, idx)) return GILUA_FOREVER;
  t = lua_tonumberx(L, idx, &isnum);
  if (!isnum || lua_type(L, idx) != LUA_TNUMBER) {
    lua_pushfstring(L, "must be a number or nil, not %s", luaL_typename(L, idx));
    return bad(L, "TypeError", fname, argname, lua_tostring(L, -1));
  }
  if (t != t) return bad(L, "ValueError", fname, argname, "must not be NaN");
  if (t > GILUA_TIMEOUT_MAX)  /* inf too, as Python's "too large" */
    return gilua_raise(L, "OverflowError", "%s%stimeout value is too large",
                       fname ? fname : "", fname ? "(): " : "");
  if (t >= 0) return t;
  switch (negative) {
    case GILUA_NEG_ZERO: return 0;
    case GILUA_NEG_LOCK: if (t == -1) return GILUA_FOREVER;  /* FALLTHROUGH */
    default: return bad(L, "ValueError", fname, argname, "must be a non-negative number");
  }
}


/* _gilua.timeout(value, fname, negative, argname) -> seconds (the value
** itself when it is kept, so an integer stays one), or nil for no limit:
** the rule above for Lua code (require("gilua.args").timeout); negative
** is "zero" (the default), "error" or "lock". */
static int l_timeout (lua_State *L) {
  static const char *const modes[] = {"zero", "error", "lock", NULL};
  const char *fname = luaL_optstring(L, 2, NULL);
  int negative = luaL_checkoption(L, 3, "zero", modes);
  const char *argname = luaL_optstring(L, 4, NULL);
  double t = gilua_timeout(L, 1, fname, argname, negative);
  if (t == GILUA_FOREVER) lua_pushnil(L);
  else if (t == 0 && lua_tonumber(L, 1) < 0) lua_pushinteger(L, 0);
  else lua_pushvalue(L, 1);
  return 1;
}


int luaopen_gilua_core (lua_State *L) {
  static const luaL_Reg funcs[] = {{"timeout", l_timeout}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  lua_pushnumber(L, GILUA_TIMEOUT_MAX);
  lua_setfield(L, -2, "TIMEOUT_MAX");
  return 1;
}

/* }================================================================== */
