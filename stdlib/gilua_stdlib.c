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


/*
** gilua's own loadable modules (_mpi.so, the C half of `require "mpi"`,
** which gilua must not link) live in lib/gilua/: beside the build's gilua
** and libgilua.so, and under PREFIX for an installed PREFIX/bin/gilua or
** PREFIX/lib/libgilua.so. So package.cpath ends with DIR/lib/gilua/?.so and
** DIR/../lib/gilua/?.so, DIR being the folder of the file this code was
** loaded from (the gilua command, or libgilua.so in a host).
*/
static void add_cpath (lua_State *L) {
  Dl_info me, prog;
  char path[PATH_MAX], *slash;
  if (dladdr((void *)add_cpath, &me) == 0 || me.dli_fname == NULL) return;
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
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  lua_getfield(L, -1, "cpath");
  lua_pushfstring(L, "%s;%s/lib/gilua/?.so;%s/../lib/gilua/?.so",
                  lua_isstring(L, -1) ? lua_tostring(L, -1) : "", path, path);
  lua_setfield(L, -3, "cpath");
  lua_pop(L, 2);
}


lua_State *gilua_open (void) {
  lua_State *L = gilua_vm_open(cmodules);
  if (L != NULL) add_cpath(L);
  return L;
}


int gilua_openlibs (lua_State *L) {
  int rc = gilua_vm_openlibs(L, cmodules);
  if (rc == 0) add_cpath(L);
  return rc;
}
