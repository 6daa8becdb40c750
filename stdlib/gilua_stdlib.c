/*
** gilua_stdlib.c: what an interpreter is made of. gilua_open and
** gilua_openlibs of gilua.h live here, at the top of the library, because
** they name every C module of stdlib/; vm/ makes the interpreter and takes
** the list from here, so that no layer calls one above it.
*/
#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "gilua_vm.h"

int luaopen_gilua_thread(lua_State *L);  /* stdlib/threading/thread.c */
int luaopen_gilua_time(lua_State *L);    /* stdlib/time/time.c */
int luaopen_gilua_sys(lua_State *L);     /* stdlib/sys/sys.c */
int luaopen_gilua_gil(lua_State *L);     /* stdlib/gil/gilmodule.c */
int luaopen_gilua_queue(lua_State *L);   /* stdlib/queue/queue.c */
int luaopen_gilua_multiprocessing(lua_State *L); /* stdlib/multiprocessing */
int luaopen_gilua_subprocess(lua_State *L); /* stdlib/subprocess */
int luaopen_gilua_asyncio(lua_State *L);  /* stdlib/asyncio/aio.c */
int luaopen_gilua_interpreters(lua_State *L); /* stdlib/concurrent/interp.c */
int luaopen_gilua_interpqueues(lua_State *L); /* stdlib/concurrent/interpqueue.c */

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
  {"_interpreters", luaopen_gilua_interpreters},
  {"_interpqueues", luaopen_gilua_interpqueues},
  {NULL, NULL}
};


/*
** gilua's own loadable modules (_mpi.so, the C half of `require "mpi"`,
** which gilua must not link) live in lib/gilua/: beside the build's gilua
** and libgilua.so, and under PREFIX for an installed PREFIX/bin/gilua or
** PREFIX/lib/libgilua.so. A searcher after Lua's own looks there, in
** DIR/lib/gilua/ and DIR/../lib/gilua/, DIR being the folder of the file
** this code was loaded from (the gilua command, or libgilua.so in a host).
** package.path and package.cpath stay what lua5.4 makes them, and a
** module it does not find adds nothing to require's message.
*/
static int own_searcher (lua_State *L) {
  const char *name = luaL_checkstring(L, 1), *file;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchpath");
  lua_pushvalue(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_call(L, 2, 1);
  if (!lua_isstring(L, -1)) return 0;
  file = lua_tostring(L, -1);
  lua_getfield(L, -2, "loadlib");
  lua_pushvalue(L, -2);
  lua_pushstring(L, "luaopen_");
  luaL_gsub(L, name, ".", "_");
  lua_concat(L, 2);
  lua_call(L, 2, 2);
  if (!lua_isfunction(L, -2))
    return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s",
                      name, file, lua_tostring(L, -1));
  lua_pop(L, 1);
  lua_pushstring(L, file);
  return 2;
}

static void add_searcher (lua_State *L) {
  Dl_info me, prog;
  char path[PATH_MAX], *slash;
  int top = lua_gettop(L);
  if (dladdr((void *)own_searcher, &me) == 0 || me.dli_fname == NULL) return;
  /* for the program itself, dladdr gives argv[0]: ask the kernel */
  if (dladdr((void *)getauxval(AT_PHDR), &prog) != 0 &&
      prog.dli_fbase == me.dli_fbase) {
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0) return;
    path[n] = '\0';
  }
  else if (realpath(me.dli_fname, path) == NULL) return;
  slash = strrchr(path, '/');
  if (slash == NULL) return;
  *slash = '\0';
  lua_getglobal(L, "package");
  if (lua_istable(L, -1) && lua_getfield(L, -1, "searchers") == LUA_TTABLE) {
    lua_pushfstring(L, "%s/lib/gilua/?.so;%s/../lib/gilua/?.so", path, path);
    lua_pushcclosure(L, own_searcher, 1);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  }
  lua_settop(L, top);
}


lua_State *gilua_open (void) {
  lua_State *L = gilua_vm_open(cmodules);
  if (L != NULL) add_searcher(L);
  return L;
}


int gilua_openlibs (lua_State *L) {
  int rc = gilua_vm_openlibs(L, cmodules);
  if (rc == 0) add_searcher(L);
  return rc;
}
