/*
** collectives.c: the collectives of `_mpi` (barrier, bcast, gather,
** allgather, scatter, alltoall). Each is run as its non-blocking form
** (MPI_Ibarrier, MPI_Ibcast, ...) polled without the GIL by core.c's
** lmpi_waitreq, as every wait of the module is (see core.c).
*/

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include <lua.h>
#include <lauxlib.h>

#include "gilua.h"
#include "mpi_int.h"


/*
** {==================================================================
** Collectives: sizes first, then the bytes, each a non-blocking
** collective polled until done.
** ===================================================================
*/

/* Runs a started collective to its end; the GIL is released around it.
** Interrupted, the request stays: the buffers of the caller are leaked. */
#define COLL(L, rc, start) \
  GILUA_BEGIN_ALLOW_THREADS(L) \
    MPI_Request r_ = MPI_REQUEST_NULL; \
    rc = lmpi_enter(); \
    if (rc == 0) { rc = (start); lmpi_leave(); } \
    if (rc == MPI_SUCCESS) rc = lmpi_waitreq(&r_, MPI_STATUS_IGNORE); \
  GILUA_END_ALLOW_THREADS(L)

static int collfail (lua_State *L, int rc, const char *call) {
  if (rc == W_INTR) lmpi_interrupted(L);
  return lmpi_raise(L, rc, call);
}

/* Counts to displacements; -1 when the total would not fit an int. */
static int displs (const int *counts, int *d, int n) {
  long long total = 0;
  int i;
  for (i = 0; i < n; i++) {
    d[i] = (int)total;
    total += counts[i];
    if (total > INT_MAX) return -1;
  }
  return (int)total;
}

static void *tmp (lua_State *L, size_t n) {
  return lua_newuserdatauv(L, n > 0 ? n : 1, 0);
}

static int m_barrier (lua_State *L) {
  Comm *c = lmpi_checkcomm(L, 1);
  int rc;
  COLL(L, rc, MPI_Ibarrier(c->c, &r_));
  if (rc != MPI_SUCCESS) return collfail(L, rc, "MPI_Barrier");
  return 0;
}

/* bcast(c, bytes or nil, root, rank) -> bytes */
static int m_bcast (lua_State *L) {
  Comm *c = lmpi_checkcomm(L, 1);
  int root = (int)luaL_checkinteger(L, 3), me = (int)luaL_checkinteger(L, 4);
  long long len = 0;
  size_t n = 0;
  const char *s = NULL;
  char *buf;
  int rc;
  if (me == root) {
    s = luaL_checklstring(L, 2, &n);
    len = (long long)lmpi_checklen(L, n);
  }
  COLL(L, rc, MPI_Ibcast(&len, 1, MPI_LONG_LONG, root, c->c, &r_));
  if (rc != MPI_SUCCESS) return collfail(L, rc, "MPI_Bcast");
  if (me == root) {
    lua_settop(L, 2);
    COLL(L, rc, MPI_Ibcast((void *)s, (int)len, MPI_BYTE, root, c->c, &r_));
    if (rc != MPI_SUCCESS) return collfail(L, rc, "MPI_Bcast");
    return 1;
  }
  buf = malloc(len > 0 ? (size_t)len : 1);
  if (buf == NULL) return luaL_error(L, "not enough memory");
  COLL(L, rc, MPI_Ibcast(buf, (int)len, MPI_BYTE, root, c->c, &r_));
  if (rc != MPI_SUCCESS) {
    if (rc != W_INTR) free(buf);
    return collfail(L, rc, "MPI_Bcast");
  }
  lmpi_pushbuf(L, buf, (int)len);
  return 1;
}

/* Pushes an array of the n pieces of buf. */
static void pushpieces (lua_State *L, const char *buf, const int *counts,
                        const int *d, int n) {
  int i;
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    lua_pushlstring(L, buf + d[i], (size_t)counts[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

/* gather(c, bytes, root, rank, size) -> array on the root, nil elsewhere;
** allgather(c, bytes, size) -> array. */
static int gather (lua_State *L, int all) {
  Comm *c = lmpi_checkcomm(L, 1);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  int root = all ? 0 : (int)luaL_checkinteger(L, 3);
  int me = all ? 0 : (int)luaL_checkinteger(L, 4);
  int size = (int)luaL_checkinteger(L, all ? 3 : 5);
  int len = lmpi_checklen(L, n), rc, total = 0, getting = all || me == root;
  int *counts = tmp(L, sizeof(int) * (size_t)size);
  int *d = tmp(L, sizeof(int) * (size_t)size);
  char *buf = NULL;
  if (all) {
    COLL(L, rc, MPI_Iallgather(&len, 1, MPI_INT, counts, 1, MPI_INT, c->c, &r_));
  }
  else {
    COLL(L, rc, MPI_Igather(&len, 1, MPI_INT, counts, 1, MPI_INT, root, c->c, &r_));
  }
  if (rc != MPI_SUCCESS) return collfail(L, rc, all ? "MPI_Allgather" : "MPI_Gather");
  if (getting) {
    total = displs(counts, d, size);
    /* every rank sees the same counts, so all of them stop here alike */
    if (total < 0 && all) return luaL_error(L, "allgather: more than 2 GiB in all");
    if (total < 0) total = 0;  /* the root fails after the gather, below */
    buf = malloc(total > 0 ? (size_t)total : 1);
    if (buf == NULL) return luaL_error(L, "not enough memory");
  }
  if (all) {
    COLL(L, rc, MPI_Iallgatherv(s, len, MPI_BYTE, buf, counts, d, MPI_BYTE, c->c, &r_));
  }
  else {
    COLL(L, rc, MPI_Igatherv(s, len, MPI_BYTE, buf, counts, d, MPI_BYTE, root, c->c, &r_));
  }
  if (rc != MPI_SUCCESS) {
    if (rc != W_INTR) free(buf);
    return collfail(L, rc, all ? "MPI_Allgather" : "MPI_Gather");
  }
  if (!getting) {
    lua_pushnil(L);
    return 1;
  }
  pushpieces(L, buf, counts, d, size);
  free(buf);
  return 1;
}

static int m_gather (lua_State *L) { return gather(L, 0); }
static int m_allgather (lua_State *L) { return gather(L, 1); }

/* The pieces of array 'i' (n strings) into one buffer with counts and
** displacements; the buffer is a userdata left on the stack. */
static char *packpieces (lua_State *L, int i, int n, int *counts, int *d) {
  long long total = 0;
  int k;
  char *buf;
  for (k = 0; k < n; k++) {
    size_t len;
    lua_geti(L, i, k + 1);
    luaL_checklstring(L, -1, &len);
    lua_pop(L, 1);
    counts[k] = lmpi_checklen(L, len);
    d[k] = (int)total;
    total += (long long)len;
    if (total > INT_MAX) luaL_error(L, "more than 2 GiB in all");
  }
  buf = tmp(L, (size_t)total);
  for (k = 0; k < n; k++) {
    lua_geti(L, i, k + 1);
    memcpy(buf + d[k], lua_tostring(L, -1), (size_t)counts[k]);
    lua_pop(L, 1);
  }
  return buf;
}

/* scatter(c, array of bytes or nil, root, rank, size) -> bytes */
static int m_scatter (lua_State *L) {
  Comm *c = lmpi_checkcomm(L, 1);
  int root = (int)luaL_checkinteger(L, 3), me = (int)luaL_checkinteger(L, 4);
  int size = (int)luaL_checkinteger(L, 5), len = 0, rc;
  int *counts = NULL, *d = NULL;
  char *sbuf = NULL, *buf;
  if (me == root) {
    luaL_checktype(L, 2, LUA_TTABLE);
    counts = tmp(L, sizeof(int) * (size_t)size);
    d = tmp(L, sizeof(int) * (size_t)size);
    sbuf = packpieces(L, 2, size, counts, d);
  }
  COLL(L, rc, MPI_Iscatter(counts, 1, MPI_INT, &len, 1, MPI_INT, root, c->c, &r_));
  if (rc != MPI_SUCCESS) return collfail(L, rc, "MPI_Scatter");
  buf = malloc(len > 0 ? (size_t)len : 1);
  if (buf == NULL) return luaL_error(L, "not enough memory");
  COLL(L, rc, MPI_Iscatterv(sbuf, counts, d, MPI_BYTE, buf, len, MPI_BYTE, root, c->c, &r_));
  if (rc != MPI_SUCCESS) {
    if (rc != W_INTR) free(buf);
    return collfail(L, rc, "MPI_Scatter");
  }
  lmpi_pushbuf(L, buf, len);
  return 1;
}

/* alltoall(c, array of size bytes, size) -> array */
static int m_alltoall (lua_State *L) {
  Comm *c = lmpi_checkcomm(L, 1);
  int size = (int)luaL_checkinteger(L, 3), rc, total;
  int *scounts = tmp(L, sizeof(int) * (size_t)size);
  int *sd = tmp(L, sizeof(int) * (size_t)size);
  int *rcounts = tmp(L, sizeof(int) * (size_t)size);
  int *rd = tmp(L, sizeof(int) * (size_t)size);
  char *sbuf, *buf;
  luaL_checktype(L, 2, LUA_TTABLE);
  sbuf = packpieces(L, 2, size, scounts, sd);
  COLL(L, rc, MPI_Ialltoall(scounts, 1, MPI_INT, rcounts, 1, MPI_INT, c->c, &r_));
  if (rc != MPI_SUCCESS) return collfail(L, rc, "MPI_Alltoall");
  total = displs(rcounts, rd, size);
  if (total < 0) total = 0;  /* the exchange then fails for the sender too */
  buf = malloc(total > 0 ? (size_t)total : 1);
  if (buf == NULL) return luaL_error(L, "not enough memory");
  COLL(L, rc, MPI_Ialltoallv(sbuf, scounts, sd, MPI_BYTE, buf, rcounts, rd,
                             MPI_BYTE, c->c, &r_));
  if (rc != MPI_SUCCESS) {
    if (rc != W_INTR) free(buf);
    return collfail(L, rc, "MPI_Alltoall");
  }
  pushpieces(L, buf, rcounts, rd, size);
  free(buf);
  return 1;
}

/* }================================================================== */


static const luaL_Reg coll_funcs[] = {
  {"barrier", m_barrier},
  {"bcast", m_bcast},
  {"gather", m_gather},
  {"allgather", m_allgather},
  {"scatter", m_scatter},
  {"alltoall", m_alltoall},
  {NULL, NULL}
};

void lmpi_open_collectives (lua_State *L) {
  luaL_setfuncs(L, coll_funcs, 0);
}
