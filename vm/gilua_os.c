/*
** gilua_os.c: what Python's os module adds that the course uses:
** os.getpid, os.getppid, os.cpu_count, in Lua's own os table.
*/
#include <unistd.h>

#include "gilua_vm.h"


static int os_getpid (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}


static int os_getppid (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getppid());
  return 1;
}


static int os_cpu_count (lua_State *L) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) lua_pushnil(L);  /* Python: None when unknown */
  else lua_pushinteger(L, n);
  return 1;
}


static const luaL_Reg osfuncs[] = {
  {"getpid", os_getpid},
  {"getppid", os_getppid},
  {"cpu_count", os_cpu_count},
  {NULL, NULL}
};


void gilua_openos (lua_State *L) {
  lua_getglobal(L, "os");
  luaL_setfuncs(L, osfuncs, 0);
  lua_pop(L, 1);
}
