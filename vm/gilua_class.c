/*
** gilua_class.c: the one way a C module makes a class of userdata: a
** metatable registered by name, a table of methods, metamethods.
*/
#include "gilua_vm.h"


void gilua_newclass (lua_State *L, const char *name, const luaL_Reg *methods,
                     const luaL_Reg *meta) {
  luaL_newmetatable(L, name);           /* its __name is 'name' */
  lua_newtable(L);
  if (methods) {
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, methods, 1);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "methods");
  lua_setfield(L, -2, "__index");       /* 'meta' may replace it */
  if (meta) {
    lua_pushvalue(L, -1);
    luaL_setfuncs(L, meta, 1);
  }
}
