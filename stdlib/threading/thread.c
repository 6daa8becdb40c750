/*
** thread.c: the low-level thread module `_thread`, on which threading.lua
** is built (as CPython's threading.py is on _thread): starting OS threads
** that run Lua, joining them, and the Lock and RLock types.
*/
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gilua_vm.h"

#define HANDLE_MT "_thread.handle"
#define LOCK_MT "_thread.lock"
#define RLOCK_MT "_thread.RLock"


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
  int joining, joined;          /* under m */
  int waiters;                  /* threads waiting on c, under m */
  atomic_int refs;
  int fn;                       /* registry ref of the function to run */
  pthread_t tid;
  pid_t pid;                    /* the process that made the thread */
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
  ts = gilua_tstate_new(gilua_mainstate());   /* takes the GIL */
  if (ts == NULL) {                           /* no memory: no thread */
    fputs("gilua: can't start new thread (not enough memory)\n", stderr);
    handle_set(h, &h->started);
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
  gilua_tstate_free(ts);
  handle_set(h, &h->done);
  handle_unref(h);
  return NULL;
}


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

static int before (const struct timespec *a, const struct timespec *b) {
  return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}


/* pthread_join until 'deadline' (NULL: none), without the GIL. Returns 1
** when the thread is joined, 0 at the deadline, -1 on Ctrl-C. */
static int reap (handle *h, const struct timespec *deadline) {
  gilua_tstate *ts = gilua_ts();
  int sliced = gilua_sigint_on() && ts != NULL && ts->gt.ident == gilua_mainident();
  if (h->pid != getpid()) return 1;     /* a thread of the parent process */
  for (;;) {
    struct timespec until;
    const struct timespec *d = deadline;
    int rc;
    if (sliced) {
      if (gilua_interrupt_pending()) return -1;
      gilua_deadline(&until, JOIN_SLICE);
      if (d == NULL || before(&until, d)) d = &until;
    }
    rc = d ? pthread_clockjoin_np(h->tid, NULL, CLOCK_MONOTONIC, d)
           : pthread_join(h->tid, NULL);
    if (rc != ETIMEDOUT) return 1;      /* 0, or no such thread any more */
    if (d == deadline) return 0;
  }
}


/* start(fn): runs fn in a new OS thread; returns its handle. */
static int t_start (lua_State *L) {
  handle *h, **ud;
  pthread_attr_t attr;
  size_t size = atomic_load(&stack_size);
  int err;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  ud = lua_newuserdatauv(L, sizeof *ud, 0);
  *ud = NULL;
  h = calloc(1, sizeof *h);
  if (h == NULL) return luaL_error(L, "not enough memory");
  pthread_mutex_init(&h->m, NULL);
  gilua_cond_init(&h->c);
  atomic_init(&h->refs, 2);
  h->pid = getpid();
  lua_pushvalue(L, 1);
  h->fn = luaL_ref(L, LUA_REGISTRYINDEX);
  *ud = h;
  luaL_setmetatable(L, HANDLE_MT);
  pthread_attr_init(&attr);
  err = size ? pthread_attr_setstacksize(&attr, size) : 0;
  if (err == 0) err = pthread_create(&h->tid, &attr, bootstrap, h);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, h->fn);
    h->joined = 1;                  /* nothing to join or detach */
    atomic_store(&h->refs, 1);
    return gilua_raise(L, "RuntimeError", "can't start new thread (%s)", strerror(err));
  }
  handle_wait(L, h, &h->started);
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
  double timeout = lua_isnoneornil(L, 2) ? -1 : luaL_checknumber(L, 2);
  struct timespec deadline, *d = NULL;
  int ok = 0, rc = 0;
  if (timeout >= 0) gilua_deadline(d = &deadline, timeout);
  GILUA_BEGIN_ALLOW_THREADS(L)
    pthread_mutex_lock(&h->m);
    while (!h->joined && rc == 0) {
      if (!h->joining) {                  /* we reap it */
        int r;
        h->joining = 1;
        pthread_mutex_unlock(&h->m);
        r = reap(h, d);
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
  int done;
  pthread_mutex_lock(&h->m);
  done = h->done;
  pthread_mutex_unlock(&h->m);
  lua_pushboolean(L, done);
  return 1;
}


/* The thread's ident and native id (known once start() has returned). */
static int h_ident (lua_State *L) {
  handle *h = tohandle(L);
  handle_wait(L, h, &h->started);
  lua_pushinteger(L, (lua_Integer)h->ident);
  return 1;
}


static int h_native_id (lua_State *L) {
  handle *h = tohandle(L);
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


/*
** Locks. The state of a lock is only ever read or written by a thread
** holding the GIL, so taking a free lock costs no atomic operation at all;
** waiting goes through a gilua_waitq. Like CPython's locks these are not
** fair: a running thread may take the lock again before a woken waiter
** gets the GIL.
**
** acquire() and release() are the hot path of every lock-like object, so
** the methods are C closures whose upvalues are the two metatables: the
** type check is one metatable comparison (no registry lookup by name), and
** acquire() without arguments parses no options. The metatable that the
** check pushes is left on the stack: the value returned is pushed above it.
*/
typedef struct lock {
  int locked, rlock;
  unsigned long owner;          /* ident of the owner */
  lua_Integer count;            /* RLock: recursion depth */
  gilua_waitq wq;
} lock;

/* A method's upvalues: the addresses of its own type's metatable and of
** the other type's (light userdata: reading them costs less than any
** comparison of tables), then the two metatables themselves, which keep
** those addresses from being reused while the methods exist. */
#define MY_MT lua_upvalueindex(1)
#define OTHER_MT lua_upvalueindex(2)
#define LOCK_NUPVALUES 4


/* The lock at index 1, its metatable pushed (for methods only: it reads
** their upvalues). A Lock or an RLock passes at the first comparison. */
static lock *checklock (lua_State *L) {
  const void *mt;
  lock *lk;
  if (!lua_getmetatable(L, 1) ||
      ((mt = lua_topointer(L, -1)) != lua_touserdata(L, MY_MT) &&
       mt != lua_touserdata(L, OTHER_MT)) ||
      (lk = lua_touserdata(L, 1)) == NULL)  /* a table given our metatable */
    luaL_typeerror(L, 1, "lock");
  return lk;
}


static lock *tolock (lua_State *L) {
  lock *lk = checklock(L);
  lua_pop(L, 1);
  return lk;
}


/* Who owns a lock. A plain Lock records it too: Condition's ownership
** checks read it (see r_is_owned). */
static unsigned long me (void) {
  return gilua_ts()->gt.ident;
}


static int try_take (lock *lk, unsigned long id) {
  if (!lk->locked) {
    lk->locked = 1;
    lk->owner = id;
    lk->count = 1;
    return 1;
  }
  if (lk->rlock && lk->owner == id) {
    lk->count++;
    return 1;
  }
  return 0;
}


/* Take the lock, waiting at most 'timeout' seconds (negative: forever). */
static int take (lua_State *L, lock *lk, double timeout) {
  unsigned long id = me();
  struct timespec deadline;
  if (try_take(lk, id)) return 1;
  if (timeout == 0) return 0;
  if (timeout > 0) gilua_deadline(&deadline, timeout);
  for (;;) {
    int intime = gilua_waitq_wait(L, &lk->wq, timeout > 0 ? &deadline : NULL);
    if (try_take(lk, id)) return 1;
    if (!intime) return 0;
  }
}


/* acquire(blocking=true, timeout=-1) or acquire{blocking=, timeout=} */
static int l_acquire (lua_State *L) {
  int nargs = lua_gettop(L) - 1;
  lock *lk = checklock(L);
  gilua_args a;
  int blocking, isnum;
  double timeout = -1;
  if (nargs == 0) {  /* the common case: no option to read */
    if (!try_take(lk, me())) take(L, lk, -1);
    lua_pushvalue(L, 1);
    return 1;
  }
  lua_pop(L, 1);
  gilua_args_init(&a, L, 2);
  blocking = gilua_arg_bool(&a, 0, "blocking", 1);
  if (gilua_arg(&a, 1, "timeout") != LUA_TNIL) {
    timeout = lua_tonumberx(L, -1, &isnum);
    if (!isnum) return gilua_raise(L, "TypeError", "acquire: 'timeout' must be a number");
    if (timeout < 0 && timeout != -1)
      return gilua_raise(L, "ValueError", "timeout value must be a non-negative number");
    if (!blocking && timeout != -1)
      return gilua_raise(L, "ValueError", "can't specify a timeout for a non-blocking call");
  }
  lua_pop(L, 1);
  if (!blocking) timeout = 0;
  if (take(L, lk, timeout)) lua_pushvalue(L, 1);
  else lua_pushboolean(L, 0);
  return 1;
}


/* The wait queue is only touched when somebody waits. */
static void release (lua_State *L, lock *lk) {
  if (!lk->locked)
    gilua_raise(L, "RuntimeError", "release unlocked lock");
  if (lk->rlock) {
    if (lk->owner != me())
      gilua_raise(L, "RuntimeError", "cannot release un-acquired lock");
    if (--lk->count > 0) return;
  }
  lk->locked = 0;
  lk->owner = 0;
  if (lk->wq.waiters > 0) gilua_waitq_wake(&lk->wq, 0);
}


/* release(), and __close(self, err): a failed acquire gave false, which
** <close> skips. */
static int l_release (lua_State *L) {
  release(L, checklock(L));
  return 0;
}


static int l_locked (lua_State *L) {
  lua_pushboolean(L, checklock(L)->locked);
  return 1;
}


static int with_done (lua_State *L, int status, lua_KContext ctx) {
  lock *lk = lua_touserdata(L, 1);   /* checked by l_with */
  (void)ctx;
  release(L, lk);
  if (status != LUA_OK && status != LUA_YIELD) return lua_error(L);
  return lua_gettop(L) - 1;
}


/* lock:with(fn, ...): Python's `with lock:` block as a function. The lock
** stays at index 1 for with_done; fn's results follow it. */
static int l_with (lua_State *L) {
  lock *lk = tolock(L);
  luaL_checkany(L, 2);
  if (!try_take(lk, me())) take(L, lk, -1);
  return with_done(L, lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, with_done), 0);
}


static int l_tostring (lua_State *L) {
  lock *lk = tolock(L);
  lua_pushfstring(L, "<%s %s object at %p>", lk->locked ? "locked" : "unlocked",
                  lk->rlock ? "_thread.RLock" : "_thread.lock", (void *)lk);
  return 1;
}


static int l_gc (lua_State *L) {
  gilua_waitq_destroy(&tolock(L)->wq);
  return 0;
}


/* For Condition: hand the RLock over whatever its depth, and back. */
static int r_is_owned (lua_State *L) {
  lock *lk = tolock(L);
  lua_pushboolean(L, lk->locked && lk->owner == me());
  return 1;
}


static int r_release_save (lua_State *L) {
  lock *lk = tolock(L);
  lua_Integer count = lk->count;
  if (!lk->locked || (lk->rlock && lk->owner != me()))
    return gilua_raise(L, "RuntimeError", "cannot release un-acquired lock");
  lk->count = 1;
  release(L, lk);
  lua_pushinteger(L, count);
  return 1;
}


static int r_acquire_restore (lua_State *L) {
  lock *lk = tolock(L);
  lua_Integer count = luaL_optinteger(L, 2, 1);
  take(L, lk, -1);
  lk->count = count;
  return 0;
}


static int newlock (lua_State *L, int rlock) {
  lock *lk = lua_newuserdatauv(L, sizeof *lk, 0);
  memset(lk, 0, sizeof *lk);
  lk->rlock = rlock;
  gilua_waitq_init(&lk->wq);
  luaL_setmetatable(L, rlock ? RLOCK_MT : LOCK_MT);
  return 1;
}


static int t_allocate_lock (lua_State *L) { return newlock(L, 0); }
static int t_rlock (lua_State *L) { return newlock(L, 1); }


static int t_main_ident (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)gilua_mainident());
  return 1;
}


static const luaL_Reg handle_methods[] = {
  {"join", h_join}, {"is_done", h_is_done}, {"ident", h_ident},
  {"native_id", h_native_id}, {NULL, NULL}
};

static const luaL_Reg lock_methods[] = {
  {"acquire", l_acquire}, {"release", l_release}, {"locked", l_locked},
  {"_is_owned", r_is_owned}, {"_release_save", r_release_save},
  {"_acquire_restore", r_acquire_restore}, {"with", l_with}, {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"start", t_start}, {"stack_size", t_stack_size}, {"get_ident", t_get_ident},
  {"get_native_id", t_get_native_id}, {"set_name", t_set_name},
  {"allocate_lock", t_allocate_lock}, {"RLock", t_rlock},
  {"main_ident", t_main_ident}, {NULL, NULL}
};


/* The upvalues of a method of the type whose metatable is at 'mt'. */
static void push_upvalues (lua_State *L, int mt, int other) {
  lua_pushlightuserdata(L, (void *)lua_topointer(L, mt));
  lua_pushlightuserdata(L, (void *)lua_topointer(L, other));
  lua_pushvalue(L, mt);
  lua_pushvalue(L, other);
}


/* Each lock type has its metatable and methods table; every method is a
** closure with the upvalues checklock reads, its own type's first. */
static void lock_metatables (lua_State *L) {
  static const luaL_Reg metamethods[] = {
    {"__close", l_release}, {"__tostring", l_tostring}, {"__gc", l_gc},
    {NULL, NULL}
  };
  int lmt, rmt, mt;
  luaL_newmetatable(L, LOCK_MT);
  lmt = lua_gettop(L);
  luaL_newmetatable(L, RLOCK_MT);
  rmt = lua_gettop(L);
  for (mt = lmt; mt <= rmt; mt++) {
    int other = (mt == lmt) ? rmt : lmt;
    lua_newtable(L);
    push_upvalues(L, mt, other);
    luaL_setfuncs(L, lock_methods, LOCK_NUPVALUES);
    lua_setfield(L, mt, "__index");
    lua_pushvalue(L, mt);
    push_upvalues(L, mt, other);
    luaL_setfuncs(L, metamethods, LOCK_NUPVALUES);
    lua_pushliteral(L, "lock");
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
}


int luaopen_gilua_thread (lua_State *L) {
  luaL_newmetatable(L, HANDLE_MT);
  luaL_newlib(L, handle_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, h_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lock_metatables(L);
  luaL_newlib(L, funcs);
  return 1;
}
