/*
** thread.c: the low-level thread module `_thread`, on which threading.lua
** is built (as CPython's threading.py is on _thread): starting OS threads
** that run Lua and joining them. Its locks are in lock.c.
*/
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "thread.h"

#define HANDLE_MT "_thread.handle"


/*
** Thread handles. The OS thread and the Lua userdata share one record,
** freed by whichever lets go last.
**
** start() returns once the new thread has its thread state (and so the
** GIL) and has reported its ident and native id, as Python's waits for
** its thread to have started: the new thread then runs first, until it
** blocks or ends, before its starter gets the GIL back.
**
** join() is pthread_join, woken by the kernel once the thread is gone:
** waiting for a "done" flag first often meant sleeping twice, once for the
** flag and once more in pthread_join. Joining also puts the thread's stack
** back in the C library's cache for the next thread at once (a detached
** thread's may not be back yet, and a new stack is mapped). Only one
** joiner calls pthread_join ('joining'); others wait for it on 'c'. A
** handle collected unjoined detaches its thread. A fork child must not
** touch its parent's threads (their descriptors are free for reuse there),
** hence 'pid'.
*/
typedef struct handle {
  pthread_mutex_t m;
  pthread_cond_t c;             /* started, done, or a joiner gave up */
  int started, done;            /* under m */
  int finished;                 /* under m: done, as the scheduler sees it */
  int joining, joined;          /* under m */
  int waiters;                  /* threads waiting on c, under m */
  atomic_int refs;
  int fn;                       /* registry ref of the function to run */
  pthread_t tid;
  pid_t pid;                    /* the process that made the thread */
  lua_State *main;              /* the interpreter it runs in */
  unsigned long ident;
  pid_t native_id;
} handle;


/* The stack size of new threads (threading.stack_size), 0 for the system's
** default. Like CPython's, one setting for the whole process. */
static atomic_size_t stack_size;

/* CPython's lower bound for stack_size(n), 32 KiB. */
#define STACK_MIN 32768


static void handle_unref (handle *h) {
  if (atomic_fetch_sub(&h->refs, 1) == 1) {
    pthread_mutex_destroy(&h->m);
    pthread_cond_destroy(&h->c);
    free(h);
  }
}


/* Sets *flag; only wakes somebody up if somebody waits. */
static void handle_set (handle *h, int *flag) {
  int waiters;
  pthread_mutex_lock(&h->m);
  *flag = 1;
  waiters = h->waiters;
  pthread_mutex_unlock(&h->m);
  if (waiters) pthread_cond_broadcast(&h->c);
  gilua_sched_wake(h, 1);
}


static int handle_get (handle *h, int *flag) {
  int set;
  pthread_mutex_lock(&h->m);
  set = *flag;
  pthread_mutex_unlock(&h->m);
  return set;
}


/*
** Under the deterministic scheduler a thread's start and end are events
** it sees (gilua_sched_wait on the handle), set by the thread itself while
** it holds the GIL: 'started' once it runs, 'finished' just before it
** lets the GIL go for good. Returns 0 if 'until' passed first.
*/
static int sched_wait_for (lua_State *L, handle *h, int *flag, double until,
                           const char *what) {
  int intime = 1;
  while (intime && !handle_get(h, flag) && !handle_get(h, &h->done)) {
    gilua_sched_note(h->ident, " ", "%s", what);
    intime = gilua_sched_wait(L, h, until);
  }
  return handle_get(h, flag) || handle_get(h, &h->done);
}


static void *bootstrap (void *arg) {
  handle *h = arg;
  gilua_tstate *ts;
  lua_State *L;
  sigset_t set;
  /* Ctrl-C belongs to the main thread, as in Python. */
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  ts = gilua_tstate_new(h->main);             /* takes the GIL */
  if (ts == NULL) {                           /* no memory: no thread */
    fputs("gilua: can't start new thread (not enough memory)\n", stderr);
    handle_set(h, &h->started);
    gil_sched_unexpect(gilua_gil());          /* its starter waits no more */
    handle_set(h, &h->done);
    handle_unref(h);
    return NULL;
  }
  L = ts->L;
  pthread_mutex_lock(&h->m);
  h->ident = ts->gt.ident;
  h->native_id = ts->gt.native_id;
  pthread_mutex_unlock(&h->m);
  handle_set(h, &h->started);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->fn);
  luaL_unref(L, LUA_REGISTRYINDEX, h->fn);
  if (gilua_pcall(L, 0, 0) != LUA_OK) gilua_report(L);
  lua_settop(L, 0);
  if (gilua_sched_on(ts)) handle_set(h, &h->finished);
  gilua_tstate_free(ts);
  handle_set(h, &h->done);
  handle_unref(h);
  return NULL;
}


/* NULL once the userdata was finalized. Its thread is done then (a running
** thread keeps its Thread object, hence its handle, reachable), but Lua
** code may still call it: an object finalized in the same cycle as another
** that refers to it (an executor and its threads) is reachable again. */
static handle *tohandle (lua_State *L) {
  return *(handle **)luaL_checkudata(L, 1, HANDLE_MT);
}


/* Waits until *flag is set, with the GIL released if it is not yet. */
static void handle_wait (lua_State *L, handle *h, int *flag) {
  int rc = 0, set;
  pthread_mutex_lock(&h->m);
  set = *flag;
  pthread_mutex_unlock(&h->m);
  if (set) return;
  GILUA_BEGIN_ALLOW_THREADS(L)
    pthread_mutex_lock(&h->m);
    h->waiters++;
    while (!*flag && rc == 0)
      rc = gilua_condwait(&h->c, &h->m, NULL);
    h->waiters--;
    pthread_mutex_unlock(&h->m);
  GILUA_END_ALLOW_THREADS(L)
  if (rc == EINTR) gilua_checkinterrupt(L);
}


/* The main thread sees Ctrl-C while it waits: it waits in slices of this
** many seconds, as gilua_condwait does. */
#define JOIN_SLICE 0.05


/*
** pthread_join until 'until' (gilua_monotonic() time; negative: none),
** without the GIL. Returns 1 when the thread is joined, 0 at the deadline,
** -1 on Ctrl-C. Timed waits use pthread_timedjoin_np, whose deadline is on
** the realtime clock, for slices at most: the sanitizers know it (and not
** pthread_clockjoin_np), and a jump of the clock only stretches a slice.
*/
static int reap (handle *h, double until) {
  gilua_tstate *ts = gilua_ts();
  int sliced = gilua_sigint_on() && ts != NULL && ts->gt.ident == gilua_mainident();
  if (h->pid != getpid()) return 1;     /* a thread of the parent process */
  for (;;) {
    double wait = until < 0 ? -1 : until - gilua_monotonic();
    struct timespec rt;
    int rc;
    if (sliced && gilua_interrupt_pending()) return -1;
    if (until >= 0 && wait <= 0)
      return pthread_tryjoin_np(h->tid, NULL) != EBUSY;
    if (sliced && (wait < 0 || wait > JOIN_SLICE)) wait = JOIN_SLICE;
    if (wait < 0) {
      pthread_join(h->tid, NULL);
      return 1;
    }
    clock_gettime(CLOCK_REALTIME, &rt);
    rt.tv_sec += (time_t)wait;
    rt.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
    if (rt.tv_nsec >= 1000000000L) {
      rt.tv_sec++;
      rt.tv_nsec -= 1000000000L;
    }
    rc = pthread_timedjoin_np(h->tid, NULL, &rt);
    if (rc != ETIMEDOUT) return 1;      /* 0, or no such thread any more */
  }
}


/* start(fn): runs fn in a new OS thread; returns its handle. */
static int t_start (lua_State *L) {
  handle *h, **ud;
  pthread_attr_t attr;
  size_t size = atomic_load(&stack_size);
  gilua_tstate *ts = gilua_ts();
  int err, sched = gilua_sched_on(ts);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  ud = lua_newuserdatauv(L, sizeof *ud, 0);
  *ud = NULL;
  h = calloc(1, sizeof *h);
  if (h == NULL) return luaL_error(L, "not enough memory");
  pthread_mutex_init(&h->m, NULL);
  gilua_cond_init(&h->c);
  atomic_init(&h->refs, 2);
  h->pid = getpid();
  h->main = gilua_mainstate();
  lua_pushvalue(L, 1);
  h->fn = luaL_ref(L, LUA_REGISTRYINDEX);
  *ud = h;
  luaL_setmetatable(L, HANDLE_MT);
  pthread_attr_init(&attr);
  err = size ? pthread_attr_setstacksize(&attr, size) : 0;
  if (err == 0 && sched) gil_sched_expect(&ts->gt);
  if (err == 0) err = pthread_create(&h->tid, &attr, bootstrap, h);
  pthread_attr_destroy(&attr);
  if (err != 0 && sched) gil_sched_unexpect(ts->gt.gil);
  if (err != 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, h->fn);
    h->joined = 1;                  /* nothing to join or detach */
    atomic_store(&h->refs, 1);
    return gilua_raise(L, "RuntimeError", "can't start new thread (%s)", strerror(err));
  }
  if (sched) {
    gil_sched_await(&ts->gt);
    sched_wait_for(L, h, &h->started, GILUA_FOREVER, "the start of");
  }
  else handle_wait(L, h, &h->started);
  return 1;
}


/* stack_size([size]): the stack size of threads started from now on, as
** Python's: 0 means the system's default, else at least 32 KiB. Returns the
** previous setting. */
static int t_stack_size (lua_State *L) {
  size_t old = atomic_load(&stack_size);
  if (!lua_isnoneornil(L, 1)) {
    lua_Integer n;
    pthread_attr_t attr;
    int bad;
    if (!lua_isinteger(L, 1))
      return gilua_raise(L, "TypeError", "stack_size: 'size' must be an integer, not %s",
                         luaL_typename(L, 1));
    n = lua_tointeger(L, 1);
    if (n != 0 && n < STACK_MIN)
      return gilua_raise(L, "ValueError", "size not valid: %I bytes", (LUAI_UACINT)n);
    pthread_attr_init(&attr);       /* a size the system refuses is refused here */
    bad = n != 0 && pthread_attr_setstacksize(&attr, (size_t)n) != 0;
    pthread_attr_destroy(&attr);
    if (bad) return gilua_raise(L, "ValueError", "size not valid: %I bytes", (LUAI_UACINT)n);
    atomic_store(&stack_size, (size_t)n);
  }
  lua_pushinteger(L, (lua_Integer)old);
  return 1;
}


/* join([timeout]): true once the thread has ended, false on timeout. */
static int h_join (lua_State *L) {
  handle *h = tohandle(L);
  double timeout = gilua_timeout(L, 2, "Thread.join", NULL, GILUA_NEG_ZERO);
  if (h == NULL) {                      /* finalized: the thread is done */
    lua_pushboolean(L, 1);
    return 1;
  }
  double until;
  struct timespec deadline, *d = NULL;
  int ok = 0, rc = 0;
  if (gilua_sched_on(gilua_ts()) &&
      !sched_wait_for(L, h, &h->finished, gilua_until(timeout),
                      "the end of")) {
    lua_pushboolean(L, 0);
    return 1;
  }
  /* (under the scheduler, the thread has let the GIL go for good: what
  ** follows is short, a call outside that the others wait for) */
  until = timeout >= 0 ? gilua_monotonic() + timeout : -1;
  if (timeout >= 0) gilua_deadline(d = &deadline, timeout);
  GILUA_BEGIN_ALLOW_THREADS(L)
    pthread_mutex_lock(&h->m);
    while (!h->joined && rc == 0) {
      if (!h->joining) {                  /* we reap it */
        int r;
        h->joining = 1;
        pthread_mutex_unlock(&h->m);
        r = reap(h, until);
        pthread_mutex_lock(&h->m);
        h->joining = 0;
        if (r > 0) h->joined = 1;
        if (h->waiters) pthread_cond_broadcast(&h->c);
        if (r <= 0) rc = r < 0 ? EINTR : ETIMEDOUT;
      }
      else {                              /* somebody else does */
        h->waiters++;
        rc = gilua_condwait(&h->c, &h->m, d);
        h->waiters--;
      }
    }
    ok = h->joined;
    pthread_mutex_unlock(&h->m);
  GILUA_END_ALLOW_THREADS(L)
  if (rc == EINTR) gilua_checkinterrupt(L);
  lua_pushboolean(L, ok);
  return 1;
}


static int h_is_done (lua_State *L) {
  handle *h = tohandle(L);
  int done = 1;
  if (h == NULL) {
    lua_pushboolean(L, 1);
    return 1;
  }
  pthread_mutex_lock(&h->m);
  done = h->done || h->finished;
  pthread_mutex_unlock(&h->m);
  lua_pushboolean(L, done);
  return 1;
}


/* The thread's ident and native id (known once start() has returned). */
static int h_ident (lua_State *L) {
  handle *h = tohandle(L);
  if (h == NULL) {
    lua_pushinteger(L, 0);
    return 1;
  }
  handle_wait(L, h, &h->started);
  lua_pushinteger(L, (lua_Integer)h->ident);
  return 1;
}


static int h_native_id (lua_State *L) {
  handle *h = tohandle(L);
  if (h == NULL) {
    lua_pushinteger(L, 0);
    return 1;
  }
  handle_wait(L, h, &h->started);
  lua_pushinteger(L, (lua_Integer)h->native_id);
  return 1;
}


static int h_gc (lua_State *L) {
  handle **ud = luaL_checkudata(L, 1, HANDLE_MT);
  handle *h = *ud;
  if (h) {
    pthread_mutex_lock(&h->m);
    if (!h->joined && h->pid == getpid()) pthread_detach(h->tid);  /* no joiner: they hold the handle */
    h->joined = 1;
    pthread_mutex_unlock(&h->m);
    handle_unref(h);
  }
  *ud = NULL;
  return 0;
}


static int t_get_ident (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)gilua_ts()->gt.ident);
  return 1;
}


static int t_get_native_id (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)gilua_ts()->gt.native_id);
  return 1;
}


/* set_name(name[, ident]): the name statistics and traces show for the
** calling thread, or for the running thread 'ident'. */
static int t_set_name (lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  if (lua_isnoneornil(L, 2))
    gil_setname(&gilua_ts()->gt, name);
  else
    gil_setname_ident(gilua_gil(), (unsigned long)luaL_checkinteger(L, 2), name);
  return 0;
}


static int t_main_ident (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)gilua_mainident());
  return 1;
}


static const luaL_Reg handle_methods[] = {
  {"join", h_join}, {"is_done", h_is_done}, {"ident", h_ident},
  {"native_id", h_native_id}, {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"start", t_start}, {"stack_size", t_stack_size}, {"get_ident", t_get_ident},
  {"get_native_id", t_get_native_id}, {"set_name", t_set_name},
  {"main_ident", t_main_ident}, {NULL, NULL}
};


static const luaL_Reg handle_meta[] = {
  {"__gc", h_gc}, {NULL, NULL}
};


int luaopen_gilua_thread (lua_State *L) {
  gilua_newclass(L, HANDLE_MT, handle_methods, handle_meta);
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  thread_openlocks(L);
  return 1;
}
