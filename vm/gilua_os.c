/*
** gilua_os.c: Lua's os table with what Python's os module adds that the
** course uses (os.getpid, os.getppid, os.cpu_count), and os.execute
** waiting for its command without the GIL.
*/
#include <errno.h>
#include <stdlib.h>
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


/* Lua's os.execute, with the GIL released while the command runs. */
static int os_execute (lua_State *L) {
  const char *cmd = luaL_optstring(L, 1, NULL);
  int stat, en;
  gilua_release(L);
  errno = 0;
  stat = system(cmd);  /* even system(NULL) runs a shell */
  en = errno;
  gilua_acquire(L);
  if (cmd == NULL) {
    lua_pushboolean(L, stat);
    return 1;
  }
  errno = en;
  return luaL_execresult(L, stat);
}


static const luaL_Reg osfuncs[] = {
  {"execute", os_execute},
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
