/*
** core.c: `_mpi`'s life, communicators, waits, point to point and the
** rest of the environment; mpi.c opens the module (mpi_int.h says what
** the files share). stdlib/mpi/mpi.lua loads it and turns Lua values into
** bytes with the serializer; these files move bytes.
**
** Every call that may wait does so without the GIL, and none blocks
** inside MPI: a blocking operation is started as its non-blocking form
** (MPI_Isend, MPI_Ibcast, ...) or probed for (MPI_Improbe), then polled
** with a back-off (a few polls back to back, then sleeps doubling from
** 1 us to 1 ms), as mpi4py.futures does. A blocking MPI call would spin
** a core (Open MPI's progress loop), which a busy machine cannot spare,
** and could not be interrupted by Ctrl-C; the polling loop asks
** gilua_interrupt_pending() between polls.
**
** Thread levels: MPI_THREAD_MULTIPLE is asked for; if less is granted,
** every MPI call is made holding one mutex (taken without the GIL). A
** read-write lock keeps MPI_Finalize (at exit) from running while another
** thread is inside an MPI call.
*/
#define _GNU_SOURCE  /* rwlock kinds */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>

#include <lua.h>
#include <lauxlib.h>

#include "gilua.h"
#include "mpi_int.h"

#define COMM_MT "_mpi.Comm"
#define REQ_MT "_mpi.Request"
#define WAKER_MT "_mpi.Waker"
#define RAISE_KEY "_mpi.raise"

#define SPINS 64             /* polls made back to back before sleeping */
#define NAP_FIRST 1000L      /* first sleep, ns */
#define NAP_MAX 1000000L     /* longest sleep, ns */


/*
** {==================================================================
** The library's life
** ===================================================================
*/

enum { UNINIT, LIVE, DONE };
static int state = UNINIT;       /* written under life's write lock */
static int serialize;            /* granted less than THREAD_MULTIPLE */
static int provided = -1;        /* the thread level granted */
static pthread_mutex_t biglock = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t life;
static pthread_once_t life_once = PTHREAD_ONCE_INIT;

static void life_init (void) {
  pthread_rwlockattr_t a;
  pthread_rwlockattr_init(&a);
  /* a stream of polling readers must not keep MPI_Finalize out */
  pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&life, &a);
  pthread_rwlockattr_destroy(&a);
}

/* Around every MPI call, without the GIL. Returns 0, or -1 when MPI is
** not (or no longer) usable. */
int lmpi_enter (void) {
  pthread_rwlock_rdlock(&life);
  if (state != LIVE) {
    pthread_rwlock_unlock(&life);
    return -1;
  }
  if (serialize) pthread_mutex_lock(&biglock);
  return 0;
}

void lmpi_leave (void) {
  if (serialize) pthread_mutex_unlock(&biglock);
  pthread_rwlock_unlock(&life);
}

/* Raises the error of an MPI call: mpi.lua's function makes it an
** mpi.Exception (with the error code and class); else a plain error. */
int lmpi_raise (lua_State *L, int rc, const char *call) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0, cls = rc;
  if (rc == -1)
    snprintf(msg, sizeof msg, "MPI is finalized");
  else {
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS)
      snprintf(msg, sizeof msg, "error %d", rc);
    MPI_Error_class(rc, &cls);
  }
  lua_getfield(L, LUA_REGISTRYINDEX, RAISE_KEY);
  if (lua_isfunction(L, -1)) {
    lua_pushfstring(L, "%s: %s", call, msg);
    lua_pushinteger(L, rc);
    lua_pushinteger(L, cls);
    lua_call(L, 3, 0);
  }
  return luaL_error(L, "%s: %s", call, msg);
}

/* Ctrl-C seen without the GIL: raise it now that the GIL is back. An
** operation left running may still read or write what is on the stack
** (strings, buffers): all of it is kept from the collector for good. */
void lmpi_interrupted (lua_State *L) {
  int i, top = lua_gettop(L);
  lua_createtable(L, top, 0);
  for (i = 1; i <= top; i++) {
    lua_pushvalue(L, i);
    lua_rawseti(L, -2, i);
  }
  luaL_ref(L, LUA_REGISTRYINDEX);
  gilua_checkinterrupt(L);
  luaL_error(L, "interrupted");
}

static void finalize (void) {
  int fin = 0;
  pthread_rwlock_wrlock(&life);
  if (state == LIVE) {
    state = DONE;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
  }
  pthread_rwlock_unlock(&life);
}

/* The thread level to ask for: MPI_THREAD_MULTIPLE, unless
** GILUA_MPI_THREAD_LEVEL says otherwise (single, funneled, serialized:
** how the lock that serialises calls is tested, as mpi4py.rc.thread_level). */
static int wanted_level (void) {
  const char *v = getenv("GILUA_MPI_THREAD_LEVEL");
  if (v == NULL) return MPI_THREAD_MULTIPLE;
  if (strcmp(v, "single") == 0) return MPI_THREAD_SINGLE;
  if (strcmp(v, "funneled") == 0) return MPI_THREAD_FUNNELED;
  if (strcmp(v, "serialized") == 0) return MPI_THREAD_SERIALIZED;
  return MPI_THREAD_MULTIPLE;
}

/* init() -> the thread level granted. MPI_Init may take a while (a
** singleton starts Open MPI's daemon), so without the GIL. */
static int m_init (lua_State *L) {
  int rc = MPI_SUCCESS, already = 0, want = wanted_level();
  pthread_once(&life_once, life_init);
  if (state == UNINIT) {
    /* Run without mpiexec, a program starts its workers itself: as many
    ** as it asks for on this machine, as a process pool would. */
    if (getenv("OMPI_COMM_WORLD_SIZE") == NULL)
      setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 0);
    GILUA_BEGIN_ALLOW_THREADS(L)
      pthread_rwlock_wrlock(&life);
      if (state == UNINIT) {
        MPI_Initialized(&already);
        if (already)
          MPI_Query_thread(&provided);
        else
          rc = MPI_Init_thread(NULL, NULL, want, &provided);
        if (rc == MPI_SUCCESS) {
          serialize = provided < MPI_THREAD_MULTIPLE;
          MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
          MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN);
          state = LIVE;
          if (!already) atexit(finalize);
        }
      }
      pthread_rwlock_unlock(&life);
    GILUA_END_ALLOW_THREADS(L)
    if (rc != MPI_SUCCESS) return luaL_error(L, "MPI_Init_thread failed (%d)", rc);
  }
  lua_pushinteger(L, provided);
  return 1;
}

static int m_finalize (lua_State *L) {
  GILUA_BEGIN_ALLOW_THREADS(L)
    finalize();
  GILUA_END_ALLOW_THREADS(L)
  return 0;
}

static int m_finalized (lua_State *L) {
  lua_pushboolean(L, state == DONE);
  return 1;
}

/* The error function of mpi.lua: function(message, code, class). */
static int m_seterror (lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, RAISE_KEY);
  return 0;
}

/* }================================================================== */


/*
** {==================================================================
** Communicators
** ===================================================================
*/

Comm *lmpi_checkcomm (lua_State *L, int i) {
  Comm *c = luaL_checkudata(L, i, COMM_MT);
  if (c->c == MPI_COMM_NULL) luaL_argerror(L, i, "communicator is freed");
  return c;
}

static void pushcomm (lua_State *L, MPI_Comm c, int owned) {
  Comm *p;
  if (c == MPI_COMM_NULL) {
    lua_pushnil(L);
    return;
  }
  p = lua_newuserdatauv(L, sizeof *p, 0);
  p->c = c;
  p->owned = owned;
  if (owned) MPI_Comm_set_errhandler(c, MPI_ERRORS_RETURN);
  luaL_setmetatable(L, COMM_MT);
}

static int comm_gc (lua_State *L) {
  Comm *c = luaL_checkudata(L, 1, COMM_MT);
  if (c->owned && c->c != MPI_COMM_NULL && lmpi_enter() == 0) {
    MPI_Comm_free(&c->c);  /* local: returns at once */
    lmpi_leave();
  }
  c->c = MPI_COMM_NULL;
  return 0;
}

static int comm_eq (lua_State *L) {
  Comm *a = luaL_checkudata(L, 1, COMM_MT), *b = luaL_checkudata(L, 2, COMM_MT);
  lua_pushboolean(L, a->c == b->c);
  return 1;
}

static int m_world (lua_State *L) { pushcomm(L, MPI_COMM_WORLD, 0); return 1; }
static int m_self (lua_State *L) { pushcomm(L, MPI_COMM_SELF, 0); return 1; }

static int m_parent (lua_State *L) {
  MPI_Comm p = MPI_COMM_NULL;
  if (lmpi_enter() == 0) {
    MPI_Comm_get_parent(&p);
    lmpi_leave();
  }
  if (p != MPI_COMM_NULL) MPI_Comm_set_errhandler(p, MPI_ERRORS_RETURN);
  pushcomm(L, p, 0);
  return 1;
}

/* info(c) -> rank, size, remote size (0 for an intracommunicator). */
static int m_info (lua_State *L) {
  Comm *c = lmpi_checkcomm(L, 1);
  int rank = 0, size = 0, remote = 0, inter = 0;
  if (lmpi_enter() != 0) return lmpi_raise(L, -1, "MPI_Comm_rank");
  MPI_Comm_rank(c->c, &rank);
  MPI_Comm_size(c->c, &size);
  MPI_Comm_test_inter(c->c, &inter);
  if (inter) MPI_Comm_remote_size(c->c, &remote);
  lmpi_leave();
  lua_pushinteger(L, rank);
  lua_pushinteger(L, size);
  lua_pushinteger(L, remote);
  lua_pushboolean(L, inter);
  return 4;
}

/* A call on a communicator that makes another (split, dup, merge):
** blocking and collective, so without the GIL, and it cannot be polled
** (MPI has no non-blocking form of them). */
enum { MAKE_SPLIT, MAKE_DUP, MAKE_MERGE };

static int makecomm (lua_State *L, int how) {
  static const char *const calls[] = {"MPI_Comm_split", "MPI_Comm_dup",
                                      "MPI_Intercomm_merge"};
  Comm *c = lmpi_checkcomm(L, 1);
  int a = 0, b = 0, rc;
  MPI_Comm out = MPI_COMM_NULL;
  if (how == MAKE_SPLIT) {
    a = lua_isnil(L, 2) ? MPI_UNDEFINED : (int)luaL_checkinteger(L, 2);
    b = (int)luaL_optinteger(L, 3, 0);
  }
  else if (how == MAKE_MERGE) a = lua_toboolean(L, 2);
  GILUA_BEGIN_ALLOW_THREADS(L)
    rc = lmpi_enter();
    if (rc == 0) {
      if (how == MAKE_SPLIT) rc = MPI_Comm_split(c->c, a, b, &out);
      else if (how == MAKE_DUP) rc = MPI_Comm_dup(c->c, &out);
      else rc = MPI_Intercomm_merge(c->c, a, &out);
      lmpi_leave();
    }
  GILUA_END_ALLOW_THREADS(L)
  if (rc != MPI_SUCCESS) return lmpi_raise(L, rc, calls[how]);
  pushcomm(L, out, 1);
  return 1;
}

static int m_split (lua_State *L) { return makecomm(L, MAKE_SPLIT); }
static int m_dup (lua_State *L) { return makecomm(L, MAKE_DUP); }
static int m_merge (lua_State *L) { return makecomm(L, MAKE_MERGE); }

/* free(c) / disconnect(c): the handle is unusable afterwards. */
static int freecomm (lua_State *L, int disconnect) {
  Comm *c = lmpi_checkcomm(L, 1);
  int rc;
  if (c->c == MPI_COMM_WORLD || c->c == MPI_COMM_SELF)
    return luaL_argerror(L, 1, "a predefined communicator cannot be freed");
  GILUA_BEGIN_ALLOW_THREADS(L)
    rc = lmpi_enter();
    if (rc == 0) {
      rc = disconnect ? MPI_Comm_disconnect(&c->c) : MPI_Comm_free(&c->c);
      lmpi_leave();
    }
  GILUA_END_ALLOW_THREADS(L)
  c->c = MPI_COMM_NULL;
  if (rc != MPI_SUCCESS)
    return lmpi_raise(L, rc, disconnect ? "MPI_Comm_disconnect" : "MPI_Comm_free");
  return 0;
}

static int m_free (lua_State *L) { return freecomm(L, 0); }
static int m_disconnect (lua_State *L) { return freecomm(L, 1); }

/* spawn(c, command, argv, maxprocs, root, info) -> intercommunicator,
** error codes (an array). info: a table of string keys and values. */
static int m_spawn (lua_State *L) {
  Comm *c = lmpi_checkcomm(L, 1);
  const char *cmd = luaL_checkstring(L, 2);
  int n = (int)luaL_checkinteger(L, 4), root = (int)luaL_optinteger(L, 5, 0);
  int rc, i, nargs;
  char **argv;
  int *codes;
  MPI_Info info = MPI_INFO_NULL;
  MPI_Comm out = MPI_COMM_NULL;
  luaL_checktype(L, 3, LUA_TTABLE);
  if (n < 1) return luaL_argerror(L, 4, "must be at least 1");
  nargs = (int)luaL_len(L, 3);
  argv = lua_newuserdatauv(L, sizeof(char *) * (size_t)(nargs + 1), 0);
  luaL_checkstack(L, nargs + 8, "too many arguments");
  for (i = 0; i < nargs; i++) {  /* each string stays on the stack */
    lua_geti(L, 3, i + 1);
    argv[i] = (char *)luaL_checkstring(L, -1);
  }
  argv[nargs] = NULL;
  codes = lua_newuserdatauv(L, sizeof(int) * (size_t)n, 0);
  MPI_Info_create(&info);
  if (lua_istable(L, 6)) {
    lua_pushnil(L);
    while (lua_next(L, 6)) {
      if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING)
        MPI_Info_set(info, (char *)lua_tostring(L, -2), (char *)lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  }
  GILUA_BEGIN_ALLOW_THREADS(L)
    rc = lmpi_enter();
    if (rc == 0) {
      rc = MPI_Comm_spawn(cmd, argv, n, info, root, c->c, &out, codes);
      lmpi_leave();
    }
  GILUA_END_ALLOW_THREADS(L)
  MPI_Info_free(&info);
  if (rc != MPI_SUCCESS) return lmpi_raise(L, rc, "MPI_Comm_spawn");
  pushcomm(L, out, 1);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    lua_pushinteger(L, codes[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 2;
}

static int m_abort (lua_State *L) {
  Comm *c = lmpi_checkcomm(L, 1);
  int code = (int)luaL_optinteger(L, 2, 1);
  fflush(stdout);
  fflush(stderr);
  MPI_Abort(c->c, code);
  return 0;
}

/* }================================================================== */


/*
** {==================================================================
** Waiting
** ===================================================================
*/

typedef struct Backoff {
  int spins;
  long nap;
} Backoff;

#define BACKOFF_INIT {0, NAP_FIRST}

static void nap (Backoff *b) {
  struct timespec ts;
  if (b->spins < SPINS) {
    b->spins++;
    return;
  }
  ts.tv_sec = 0;
  ts.tv_nsec = b->nap;
  nanosleep(&ts, NULL);
  if (b->nap < NAP_MAX) b->nap *= 2;
}

static double now (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A flag another thread raises to cut a wait short (mpi.futures' manager
** waits for results and is woken by a submit). */
typedef struct Waker { atomic_int set; } Waker;

static int m_waker (lua_State *L) {
  Waker *w = lua_newuserdatauv(L, sizeof *w, 0);
  atomic_init(&w->set, 0);
  luaL_setmetatable(L, WAKER_MT);
  return 1;
}

static int waker_set (lua_State *L) {
  Waker *w = luaL_checkudata(L, 1, WAKER_MT);
  atomic_store(&w->set, 1);
  return 0;
}

/* Polls a request until it completes. Called without the GIL. A
** collective cannot be cancelled, so an interrupted wait leaves the
** request (and its buffers) behind: the caller leaks them. */
int lmpi_waitreq (MPI_Request *r, MPI_Status *st) {
  Backoff b = BACKOFF_INIT;
  for (;;) {
    int flag = 0, rc = lmpi_enter();
    if (rc != 0) return rc;
    rc = MPI_Test(r, &flag, st);
    lmpi_leave();
    if (rc != MPI_SUCCESS) return rc;
    if (flag) return W_DONE;
    if (gilua_interrupt_pending()) return W_INTR;
    nap(&b);
  }
}

/* Waits for a message (source, tag) and takes it out of the queue
** (MPI_Improbe: no other thread can match it meanwhile). Called without
** the GIL. timeout < 0: no limit. */
static int waitmsg (MPI_Comm c, int source, int tag, double timeout,
                    Waker *w, MPI_Message *m, MPI_Status *st) {
  Backoff b = BACKOFF_INIT;
  double deadline = timeout < 0 ? -1 : now() + timeout;
  for (;;) {
    int flag = 0, rc = lmpi_enter();
    if (rc != 0) return rc;
    rc = MPI_Improbe(source, tag, c, &flag, m, st);
    lmpi_leave();
    if (rc != MPI_SUCCESS) return rc;
    if (flag) return W_DONE;
    if (w && atomic_exchange(&w->set, 0)) return W_WOKEN;
    if (gilua_interrupt_pending()) return W_INTR;
    if (deadline >= 0 && (timeout == 0 || now() >= deadline)) return W_TIMEOUT;
    nap(&b);
  }
}

/* Receives the matched message into a fresh buffer. Without the GIL. */
static int takemsg (MPI_Message *m, MPI_Status *st, char **buf, int *len) {
  int rc = MPI_Get_count(st, MPI_BYTE, len);
  if (rc != MPI_SUCCESS) return rc;
  *buf = malloc(*len > 0 ? (size_t)*len : 1);
  if (*buf == NULL) return MPI_ERR_NO_MEM;
  rc = lmpi_enter();
  if (rc != 0) {
    free(*buf);
    return rc;
  }
  rc = MPI_Mrecv(*buf, *len, MPI_BYTE, m, st);
  lmpi_leave();
  if (rc != MPI_SUCCESS) {
    free(*buf);
    *buf = NULL;
  }
  return rc;
}

/* Pushes the bytes and frees them. */
void lmpi_pushbuf (lua_State *L, char *buf, int len) {
  lua_pushlstring(L, buf, (size_t)len);
  free(buf);
}

int lmpi_checklen (lua_State *L, size_t len) {
  if (len > (size_t)INT_MAX)
    return luaL_error(L, "message too large (%d bytes at most)", INT_MAX);
  return (int)len;
}

/* A copy of the bytes, for a send that outlives the Lua string. */
static char *copybytes (lua_State *L, int i, int *len) {
  size_t n;
  const char *s = luaL_checklstring(L, i, &n);
  char *p;
  *len = lmpi_checklen(L, n);
  p = malloc(n > 0 ? n : 1);
  if (p == NULL) luaL_error(L, "not enough memory");
  memcpy(p, s, n);
  return p;
}

/* }================================================================== */


/*
** {==================================================================
** Point to point
** ===================================================================
*/

/* send(c, bytes, dest, tag): returns once the buffer may be reused. */
static int m_send (lua_State *L) {
  Comm *c = lmpi_checkcomm(L, 1);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  int dest = (int)luaL_checkinteger(L, 3), tag = (int)luaL_checkinteger(L, 4);
  int len = lmpi_checklen(L, n), rc;
  MPI_Request r = MPI_REQUEST_NULL;
  lua_settop(L, 2);  /* the string stays on the stack, so it lives */
  GILUA_BEGIN_ALLOW_THREADS(L)
    rc = lmpi_enter();
    if (rc == 0) {
      rc = MPI_Isend(s, len, MPI_BYTE, dest, tag, c->c, &r);
      lmpi_leave();
    }
    if (rc == MPI_SUCCESS) rc = lmpi_waitreq(&r, MPI_STATUS_IGNORE);
  GILUA_END_ALLOW_THREADS(L)
  if (rc == W_INTR) lmpi_interrupted(L);
  if (rc != MPI_SUCCESS) return lmpi_raise(L, rc, "MPI_Send");
  return 0;
}

/* recv(c, source, tag [, timeout [, waker]]) -> bytes, source, tag; or
** nothing when the timeout ran out or the waker was set. */
static int m_recv (lua_State *L) {
  Comm *c = lmpi_checkcomm(L, 1);
  int source = (int)luaL_checkinteger(L, 2), tag = (int)luaL_checkinteger(L, 3);
  double timeout = luaL_optnumber(L, 4, -1);
  Waker *w = luaL_testudata(L, 5, WAKER_MT);
  MPI_Message m;
  MPI_Status st;
  char *buf = NULL;
  int len = 0, rc;
  GILUA_BEGIN_ALLOW_THREADS(L)
    rc = waitmsg(c->c, source, tag, timeout, w, &m, &st);
    if (rc == W_DONE) rc = takemsg(&m, &st, &buf, &len);
  GILUA_END_ALLOW_THREADS(L)
  if (rc == W_TIMEOUT || rc == W_WOKEN) return 0;
  if (rc == W_INTR) lmpi_interrupted(L);
  if (rc != MPI_SUCCESS) return lmpi_raise(L, rc, "MPI_Recv");
  lmpi_pushbuf(L, buf, len);
  lua_pushinteger(L, st.MPI_SOURCE);
  lua_pushinteger(L, st.MPI_TAG);
  return 3;
}

/* probe(c, source, tag [, timeout]) -> source, tag, count, or nothing
** (timeout 0: MPI_Iprobe). The message stays in the queue. */
static int m_probe (lua_State *L) {
  Comm *c = lmpi_checkcomm(L, 1);
  int source = (int)luaL_checkinteger(L, 2), tag = (int)luaL_checkinteger(L, 3);
  double timeout = luaL_optnumber(L, 4, -1), deadline;
  MPI_Status st;
  int rc, flag = 0, count = 0;
  Backoff b = BACKOFF_INIT;
  GILUA_BEGIN_ALLOW_THREADS(L)
    deadline = timeout < 0 ? -1 : now() + timeout;
    for (;;) {
      rc = lmpi_enter();
      if (rc != 0) break;
      rc = MPI_Iprobe(source, tag, c->c, &flag, &st);
      lmpi_leave();
      if (rc != MPI_SUCCESS || flag) break;
      if (gilua_interrupt_pending()) { rc = W_INTR; break; }
      if (deadline >= 0 && (timeout == 0 || now() >= deadline)) break;
      nap(&b);
    }
    if (flag) MPI_Get_count(&st, MPI_BYTE, &count);
  GILUA_END_ALLOW_THREADS(L)
  if (rc == W_INTR) lmpi_interrupted(L);
  if (rc != MPI_SUCCESS) return lmpi_raise(L, rc, "MPI_Probe");
  if (!flag) return 0;
  lua_pushinteger(L, st.MPI_SOURCE);
  lua_pushinteger(L, st.MPI_TAG);
  lua_pushinteger(L, count);
  return 3;
}


/*
** Requests. A send request owns a copy of the bytes. A receive request
** is matched lazily: it takes the first message (source, tag) found when
** it is tested or waited for (MPI_Improbe, then MPI_Mrecv), so that it
** needs no buffer of a size guessed in advance.
*/
enum { R_SEND, R_RECV, R_DONE };

typedef struct Req {
  int kind;
  MPI_Request r;             /* R_SEND */
  char *buf;                 /* R_SEND: the bytes; R_RECV: unused */
  MPI_Comm c;                /* R_RECV */
  int source, tag;
} Req;

static Req *newreq (lua_State *L, int kind) {
  Req *q = lua_newuserdatauv(L, sizeof *q, 1);
  memset(q, 0, sizeof *q);
  q->kind = kind;
  q->r = MPI_REQUEST_NULL;
  q->c = MPI_COMM_NULL;
  luaL_setmetatable(L, REQ_MT);
  return q;
}

static int req_gc (lua_State *L) {
  Req *q = luaL_checkudata(L, 1, REQ_MT);
  if (q->kind == R_SEND && q->r != MPI_REQUEST_NULL) {
    /* never waited for: MPI may still read the bytes, so they stay */
    if (lmpi_enter() == 0) {
      MPI_Request_free(&q->r);
      lmpi_leave();
    }
    q->buf = NULL;
  }
  free(q->buf);
  q->buf = NULL;
  q->kind = R_DONE;
  return 0;
}

/* isend(c, bytes, dest, tag) -> request */
static int m_isend (lua_State *L) {
  Comm *c = lmpi_checkcomm(L, 1);
  int dest = (int)luaL_checkinteger(L, 3), tag = (int)luaL_checkinteger(L, 4);
  int len, rc;
  Req *q = newreq(L, R_SEND);
  q->buf = copybytes(L, 2, &len);
  rc = lmpi_enter();
  if (rc == 0) {
    rc = MPI_Isend(q->buf, len, MPI_BYTE, dest, tag, c->c, &q->r);
    lmpi_leave();
  }
  if (rc != MPI_SUCCESS) return lmpi_raise(L, rc, "MPI_Isend");
  return 1;
}

/* irecv(c, source, tag) -> request */
static int m_irecv (lua_State *L) {
  Comm *c = lmpi_checkcomm(L, 1);
  Req *q = newreq(L, R_RECV);
  q->c = c->c;
  q->source = (int)luaL_checkinteger(L, 2);
  q->tag = (int)luaL_checkinteger(L, 3);
  lua_pushvalue(L, 1);           /* the communicator lives as long */
  lua_setiuservalue(L, -2, 1);
  return 1;
}

/* test(req [, block]) -> false; or true (a send), or true, bytes, source,
** tag (a receive). With block, waits (without the GIL) until done. */
static int req_test (lua_State *L) {
  Req *q = luaL_checkudata(L, 1, REQ_MT);
  int block = lua_toboolean(L, 2), rc = MPI_SUCCESS, flag = 0, len = 0;
  char *buf = NULL;
  MPI_Status st;
  MPI_Message m;
  if (q->kind == R_DONE)
    return luaL_error(L, "the request is complete already");
  if (q->kind == R_SEND) {
    if (block) {
      GILUA_BEGIN_ALLOW_THREADS(L)
        rc = lmpi_waitreq(&q->r, MPI_STATUS_IGNORE);
      GILUA_END_ALLOW_THREADS(L)
      flag = (rc == W_DONE);
    }
    else {
      rc = lmpi_enter();
      if (rc == 0) {
        rc = MPI_Test(&q->r, &flag, MPI_STATUS_IGNORE);
        lmpi_leave();
      }
    }
    if (rc == W_INTR) lmpi_interrupted(L);
    if (rc != MPI_SUCCESS) return lmpi_raise(L, rc, "MPI_Wait");
    if (!flag) {
      lua_pushboolean(L, 0);
      return 1;
    }
    free(q->buf);
    q->buf = NULL;
    q->kind = R_DONE;
    lua_pushboolean(L, 1);
    return 1;
  }
  GILUA_BEGIN_ALLOW_THREADS(L)
    rc = waitmsg(q->c, q->source, q->tag, block ? -1 : 0, NULL, &m, &st);
    if (rc == W_DONE) rc = takemsg(&m, &st, &buf, &len);
  GILUA_END_ALLOW_THREADS(L)
  if (rc == W_TIMEOUT) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (rc == W_INTR) lmpi_interrupted(L);
  if (rc != MPI_SUCCESS) return lmpi_raise(L, rc, "MPI_Recv");
  q->kind = R_DONE;
  lua_pushboolean(L, 1);
  lmpi_pushbuf(L, buf, len);
  lua_pushinteger(L, st.MPI_SOURCE);
  lua_pushinteger(L, st.MPI_TAG);
  return 4;
}

/* cancel(req) -> true if it was cancelled (a receive not matched yet). */
static int req_cancel (lua_State *L) {
  Req *q = luaL_checkudata(L, 1, REQ_MT);
  if (q->kind == R_RECV) {
    q->kind = R_DONE;
    lua_pushboolean(L, 1);
  }
  else lua_pushboolean(L, 0);
  return 1;
}

static int req_done (lua_State *L) {
  Req *q = luaL_checkudata(L, 1, REQ_MT);
  lua_pushboolean(L, q->kind == R_DONE);
  return 1;
}

/* }================================================================== */


/*
** {==================================================================
** The rest of the environment
** ===================================================================
*/

static int m_wtime (lua_State *L) {
  lua_pushnumber(L, MPI_Wtime());
  return 1;
}

static int m_wtick (lua_State *L) {
  lua_pushnumber(L, MPI_Wtick());
  return 1;
}

static int m_processor_name (lua_State *L) {
  char name[MPI_MAX_PROCESSOR_NAME];
  int len = 0;
  if (MPI_Get_processor_name(name, &len) != MPI_SUCCESS) len = 0;
  lua_pushlstring(L, name, (size_t)len);
  return 1;
}

static int m_version (lua_State *L) {
  char lib[MPI_MAX_LIBRARY_VERSION_STRING];
  int major = 0, minor = 0, len = 0;
  MPI_Get_version(&major, &minor);
  if (MPI_Get_library_version(lib, &len) != MPI_SUCCESS) len = 0;
  while (len > 0 && (lib[len - 1] == '\n' || lib[len - 1] == '\0')) len--;
  lua_pushinteger(L, major);
  lua_pushinteger(L, minor);
  lua_pushlstring(L, lib, (size_t)len);
  return 3;
}

static int m_getcwd (lua_State *L) {
  char buf[4096];
  if (getcwd(buf, sizeof buf) == NULL) return 0;
  lua_pushstring(L, buf);
  return 1;
}

/* which(command) -> the path of the executable file it names (as execvp
** would find it), or nothing. */
static int m_which (lua_State *L) {
  const char *cmd = luaL_checkstring(L, 1), *path, *p;
  luaL_Buffer b;
  if (strchr(cmd, '/') != NULL) {
    if (access(cmd, X_OK) != 0) return 0;
    lua_pushvalue(L, 1);
    return 1;
  }
  path = getenv("PATH");
  if (path == NULL) path = "/usr/local/bin:/usr/bin:/bin";
  for (p = path; ; p++) {
    const char *end = strchr(p, ':');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, n ? p : ".", n ? n : 1);
    luaL_addchar(&b, '/');
    luaL_addstring(&b, cmd);
    luaL_pushresult(&b);
    if (access(lua_tostring(L, -1), X_OK) == 0) return 1;
    lua_pop(L, 1);
    if (end == NULL) return 0;
    p = end;
  }
}

static int m_tag_ub (lua_State *L) {
  int *ub = NULL, flag = 0;
  MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &ub, &flag);
  lua_pushinteger(L, flag && ub ? *ub : 32767);
  return 1;
}

/* }================================================================== */


static const luaL_Reg funcs[] = {
  {"init", m_init},
  {"finalize", m_finalize},
  {"finalized", m_finalized},
  {"seterror", m_seterror},
  {"world", m_world},
  {"self", m_self},
  {"parent", m_parent},
  {"info", m_info},
  {"split", m_split},
  {"dup", m_dup},
  {"merge", m_merge},
  {"free", m_free},
  {"disconnect", m_disconnect},
  {"spawn", m_spawn},
  {"abort", m_abort},
  {"send", m_send},
  {"recv", m_recv},
  {"probe", m_probe},
  {"isend", m_isend},
  {"irecv", m_irecv},
  {"waker", m_waker},
  {"wtime", m_wtime},
  {"wtick", m_wtick},
  {"processor_name", m_processor_name},
  {"version", m_version},
  {"getcwd", m_getcwd},
  {"which", m_which},
  {"tag_ub", m_tag_ub},
  {NULL, NULL}
};

static const luaL_Reg req_methods[] = {
  {"test", req_test},
  {"cancel", req_cancel},
  {"done", req_done},
  {NULL, NULL}
};


static void setconst (lua_State *L, const char *name, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, name);
}


void lmpi_open_core (lua_State *L) {
  luaL_setfuncs(L, funcs, 0);
  if (luaL_newmetatable(L, COMM_MT)) {
    lua_pushcfunction(L, comm_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, comm_eq);
    lua_setfield(L, -2, "__eq");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, REQ_MT)) {
    luaL_newlib(L, req_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, req_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, WAKER_MT)) {
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, waker_set);
    lua_setfield(L, -2, "set");
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  setconst(L, "ANY_SOURCE", MPI_ANY_SOURCE);
  setconst(L, "ANY_TAG", MPI_ANY_TAG);
  setconst(L, "PROC_NULL", MPI_PROC_NULL);
  setconst(L, "UNDEFINED", MPI_UNDEFINED);
  setconst(L, "THREAD_SINGLE", MPI_THREAD_SINGLE);
  setconst(L, "THREAD_FUNNELED", MPI_THREAD_FUNNELED);
  setconst(L, "THREAD_SERIALIZED", MPI_THREAD_SERIALIZED);
  setconst(L, "THREAD_MULTIPLE", MPI_THREAD_MULTIPLE);
}
