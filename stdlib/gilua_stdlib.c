/*
** gilua_stdlib.c: what an interpreter is made of. gilua_open and
** gilua_openlibs of gilua.h live here, at the top of the library, because
** they name every C module of stdlib/; vm/ makes the interpreter and takes
** the list from here, so that no layer calls one above it.
*/
#include "gilua_vm.h"

int luaopen_gilua_thread(lua_State *L);  /* stdlib/threading/thread.c */
int luaopen_gilua_time(lua_State *L);    /* stdlib/time/time.c */
int luaopen_gilua_sys(lua_State *L);     /* stdlib/sys/sys.c */
int luaopen_gilua_gil(lua_State *L);     /* stdlib/gil/gilmodule.c */
int luaopen_gilua_queue(lua_State *L);   /* stdlib/queue/queue.c */
int luaopen_gilua_multiprocessing(lua_State *L); /* stdlib/multiprocessing */
int luaopen_gilua_subprocess(lua_State *L); /* stdlib/subprocess */
int luaopen_gilua_asyncio(lua_State *L);  /* stdlib/asyncio/aio.c */

/* The C halves of the modules, found by `require` under these names. */
static const luaL_Reg cmodules[] = {
  {"_thread", luaopen_gilua_thread},
  {"time", luaopen_gilua_time},
  {"sys", luaopen_gilua_sys},
  {"gil", luaopen_gilua_gil},
  {"_queue", luaopen_gilua_queue},
  {"_multiprocessing", luaopen_gilua_multiprocessing},
  {"_subprocess", luaopen_gilua_subprocess},
  {"_asyncio", luaopen_gilua_asyncio},
  {NULL, NULL}
};


lua_State *gilua_open (void) {
  return gilua_vm_open(cmodules);
}


int gilua_openlibs (lua_State *L) {
  return gilua_vm_openlibs(L, cmodules);
}
