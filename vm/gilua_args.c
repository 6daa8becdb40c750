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
  lua_State *L = a->L;
  double t;
  int isnum;
  if (gilua_arg(a, pos, name) == LUA_TNIL) {
    lua_pop(L, 1);
    return -1;
  }
  t = lua_tonumberx(L, -1, &isnum);
  if (!isnum) {
    lua_pop(L, 1);
    return gilua_raise(L, "TypeError", "'%s' must be a number or nil", name);
  }
  lua_pop(L, 1);
  if (t < 0) return gilua_raise(L, "ValueError", "'%s' must be a non-negative number", name);
  return t;
}
