/*
** mpi_int.h: shared between the C files of `_mpi` (not installed; the
** module's interface is its Lua table).
**
**   mpi.c          opens the module from the two files below
**   core.c         the library's life, communicators, waiting, point to
**                  point, the rest of the environment
**   collectives.c  barrier, bcast, gather, allgather, scatter, alltoall
**
** They call one another downwards only: collectives.c uses core.c's
** functions below, mpi.c opens both. The names are hidden in _mpi.so:
** its one exported symbol stays luaopen__mpi.
*/
#ifndef mpi_int_h
#define mpi_int_h

#include <stddef.h>

#include <mpi.h>

#include <lua.h>

#define LMPI_FUNC __attribute__((visibility("hidden"))) extern

typedef struct Comm {
  MPI_Comm c;
  int owned;                  /* made here: freed when collected */
} Comm;

/* Outcomes of a wait, besides MPI's error codes. */
#define W_DONE 0
#define W_TIMEOUT (-2)
#define W_WOKEN (-3)
#define W_INTR (-4)

/* Around every MPI call, without the GIL: lmpi_enter returns 0, or -1
** when MPI is finalised (then lmpi_leave is not called). */
LMPI_FUNC int lmpi_enter (void);
LMPI_FUNC void lmpi_leave (void);
/* Raises the error of an MPI call 'call' that returned 'rc'. */
LMPI_FUNC int lmpi_raise (lua_State *L, int rc, const char *call);
/* Raises the KeyboardInterrupt a wait (W_INTR) saw without the GIL. */
LMPI_FUNC void lmpi_interrupted (lua_State *L);
/* Polls a request until it completes, without the GIL: W_DONE, W_INTR or
** an MPI error code. */
LMPI_FUNC int lmpi_waitreq (MPI_Request *r, MPI_Status *st);

/* The communicator argument 'i' (an error if freed). */
LMPI_FUNC Comm *lmpi_checkcomm (lua_State *L, int i);
/* A length of bytes as MPI's int count, or an error. */
LMPI_FUNC int lmpi_checklen (lua_State *L, size_t len);
/* Pushes the bytes of a malloc'ed buffer and frees it. */
LMPI_FUNC void lmpi_pushbuf (lua_State *L, char *buf, int len);

/* Add their functions (and core.c its metatables and constants) to the
** module table on the top. */
LMPI_FUNC void lmpi_open_core (lua_State *L);
LMPI_FUNC void lmpi_open_collectives (lua_State *L);

#endif
