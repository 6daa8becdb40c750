/*
** thread.c: the low-level thread module `_thread`, on which threading.lua
** is built (as CPython's threading.py is on _thread): starting OS threads
** that run Lua, joining them, and the Lock and RLock types.
*/
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "gilua_vm.h"

#define HANDLE_MT "_thread.handle"
#define LOCK_MT "_thread.lock"
#define RLOCK_MT "_thread.RLock"


/*
** Thread handles. The OS thread and the Lua userdata share one record,
** freed by whichever lets go last.
*/
typedef struct handle {
  pthread_mutex_t m;
  pthread_cond_t c;
  int started, done, refs;
  int fn;                       /* registry ref of the function to run */
  unsigned long ident;
  pid_t native_id;
} handle;


static void handle_unref (handle *h) {
  int last;
  pthread_mutex_lock(&h->m);
  last = --h->refs == 0;
  pthread_mutex_unlock(&h->m);
  if (last) {
    pthread_mutex_destroy(&h->m);
    pthread_cond_destroy(&h->c);
    free(h);
  }
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
  ts = gilua_tstate_new(gilua_mainstate());
  L = ts->L;
  pthread_mutex_lock(&h->m);
  h->ident = ts->gt.ident;
  h->native_id = ts->gt.native_id;
  h->started = 1;
  pthread_cond_broadcast(&h->c);
  pthread_mutex_unlock(&h->m);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->fn);
  luaL_unref(L, LUA_REGISTRYINDEX, h->fn);
  if (gilua_pcall(L, 0, 0) != LUA_OK) gilua_report(L);
  lua_settop(L, 0);
  gilua_tstate_free(ts);
  pthread_mutex_lock(&h->m);
  h->done = 1;
  pthread_cond_broadcast(&h->c);
  pthread_mutex_unlock(&h->m);
  handle_unref(h);
  return NULL;
}


static handle *tohandle (lua_State *L) {
  return *(handle **)luaL_checkudata(L, 1, HANDLE_MT);
}


/* Waits until *flag is set or 'timeout' runs out (negative: forever),
** with the GIL released. */
static int handle_wait (lua_State *L, handle *h, volatile int *flag, double timeout) {
  int ok, rc = 0;
  struct timespec deadline;
  if (timeout >= 0) gilua_deadline(&deadline, timeout);
  GILUA_BEGIN_ALLOW_THREADS(L)
    pthread_mutex_lock(&h->m);
    while (!*flag && (rc == 0))
      rc = gilua_condwait(&h->c, &h->m, timeout >= 0 ? &deadline : NULL);
    ok = *flag;
    pthread_mutex_unlock(&h->m);
  GILUA_END_ALLOW_THREADS(L)
  if (rc == EINTR) gilua_checkinterrupt(L);
  return ok;
}


static int t_start (lua_State *L) {
  handle *h, **ud;
  pthread_t tid;
  pthread_attr_t attr;
  int err;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  ud = lua_newuserdatauv(L, sizeof *ud, 0);
  *ud = NULL;
  h = calloc(1, sizeof *h);
  if (h == NULL) return luaL_error(L, "not enough memory");
  pthread_mutex_init(&h->m, NULL);
  gilua_cond_init(&h->c);
  h->refs = 2;
  lua_pushvalue(L, 1);
  h->fn = luaL_ref(L, LUA_REGISTRYINDEX);
  *ud = h;
  luaL_setmetatable(L, HANDLE_MT);
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  err = pthread_create(&tid, &attr, bootstrap, h);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, h->fn);
    h->refs = 1;
    return gilua_raise(L, "RuntimeError", "can't start new thread (%s)", strerror(err));
  }
  handle_wait(L, h, &h->started, -1);
  return 1;
}


static int h_join (lua_State *L) {
  handle *h = tohandle(L);
  double timeout = lua_isnoneornil(L, 2) ? -1 : luaL_checknumber(L, 2);
  if (timeout < 0) timeout = -1;
  lua_pushboolean(L, handle_wait(L, h, &h->done, timeout));
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


static int h_ident (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)tohandle(L)->ident);
  return 1;
}


static int h_native_id (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)tohandle(L)->native_id);
  return 1;
}


static int h_gc (lua_State *L) {
  handle **ud = luaL_checkudata(L, 1, HANDLE_MT);
  if (*ud) handle_unref(*ud);
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
  {"start", t_start}, {"get_ident", t_get_ident},
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
