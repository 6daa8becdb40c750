/*
** mpi.c: `_mpi`, the C half of `require "mpi"`, over the system's MPI
** library (Open MPI): opens the module from the files below. It is not
** part of libgilua: it is built apart as a loadable module (_mpi.so,
** found through package.cpath), against gilua.h alone as a user's C
** module would be, so that gilua itself does not link MPI.
**   core.c         the library's life, communicators, waits, point to
**                  point, the rest of the environment
**   collectives.c  barrier, bcast, gather, allgather, scatter, alltoall
** (mpi_int.h: what they share). How every wait is made without the GIL
** and without blocking inside MPI: see core.c.
*/

#define _GNU_SOURCE  /* dladdr */
#include <dlfcn.h>

#include <lua.h>

#include "gilua.h"
#include "mpi_int.h"


/* MPI is initialised once and finalised at exit (it cannot start again):
** this module, and the MPI library with it, stay loaded until then, even
** after the Lua state that loaded it closes (lua_close unloads C modules). */
static void stay_loaded (void) {
  Dl_info me;
  if (dladdr((void *)stay_loaded, &me) != 0 && me.dli_fname != NULL)
    dlopen(me.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}


int luaopen__mpi (lua_State *L) {
  stay_loaded();
  lua_newtable(L);
  lmpi_open_core(L);
  lmpi_open_collectives(L);
  return 1;
}
