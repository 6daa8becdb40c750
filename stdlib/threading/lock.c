/*
** lock.c: the locks of _thread (Lock and RLock) and the C parts of
** threading's Semaphore and Condition: their acquire and release, the hot
** path of every lock-like object.
**
** The state of a lock or a semaphore is only ever read or written by a
** thread holding the GIL, so taking a free one costs no atomic operation
** at all; waiting goes through a gilua_waitq, touched only when somebody
** waits. Like CPython's locks these are not fair: a running thread may take
** the lock again before a woken waiter gets the GIL.
**
** Type checks cost a pointer comparison: every function here is a C
** closure whose first upvalue is a small record (a 'kind') with the
** addresses of the metatables it accepts, and the last object that passed
** the check. That object is accepted again at once (the common case: one
** lock taken and released over and over); another one has its metatable
** compared by address. The object's __gc forgets it, and Lua frees an
** object's memory only after its __gc ran, so the address cannot belong to
** anything else meanwhile. The other upvalues are the metatables, which
** keep their addresses from being reused while the functions exist. No
** registry lookup by name, and acquire() without arguments parses no
** options.
*/
#include <string.h>

#include "thread.h"

#define LOCK_MT "_thread.lock"
#define RLOCK_MT "_thread.RLock"
#define SEM_MT "_thread.semaphore"

typedef struct kind {
  const void *mt[2];            /* the metatables accepted */
  void *last;                   /* the last object accepted, or NULL */
} kind;

/* Upvalues: the kind, then the metatables it names. */
#define KIND lua_upvalueindex(1)
#define NUPVALUES 3


/* If the value at 'idx' is a full userdata of the function's kind, returns
** its block, else NULL. The stack is left as it was. */
static void *testud (lua_State *L, int idx) {
  kind *k = lua_touserdata(L, KIND);
  void *p = lua_touserdata(L, idx);
  const void *mt;
  if (p != NULL && p == k->last) return p;
  if (p == NULL || !lua_getmetatable(L, idx)) return NULL;
  mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  if (mt != k->mt[0] && mt != k->mt[1]) return NULL;
  return k->last = p;
}


/* The object of its __gc: forgotten by the kind. */
static void forget (lua_State *L, void *p) {
  kind *k = lua_touserdata(L, KIND);
  if (k->last == p) k->last = NULL;
}


/*
** {======================================================
** Lock and RLock
** =======================================================
*/

typedef struct lock {
  int locked, rlock;
  unsigned long owner;          /* ident of the owner */
  lua_Integer count;            /* RLock: recursion depth */
  gilua_waitq wq;
} lock;


static lock *tolock (lua_State *L) {
  lock *lk = testud(L, 1);
  if (lk == NULL) luaL_typeerror(L, 1, "lock");
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


/* Under the deterministic scheduler taking a lock may be a preemption
** point (see gil/gil_sched.c). */
#define point()  { gilua_tstate *ts_ = gilua_ts(); \
                   if (gilua_sched_on(ts_)) gilua_sched_point(); }


/* Take the lock, waiting at most 'timeout' seconds (negative: forever). */
static int take (lua_State *L, lock *lk, double timeout) {
  unsigned long id = me();
  double until;
  if (try_take(lk, id)) return 1;
  if (timeout == 0) return 0;
  until = gilua_until(timeout);
  for (;;) {
    int intime = gilua_waitq_wait(L, &lk->wq, until);
    if (try_take(lk, id)) return 1;
    if (!intime) return 0;
  }
}


/* acquire(blocking=true, timeout=-1) or acquire{blocking=, timeout=} */
static int l_acquire (lua_State *L) {
  int nargs = lua_gettop(L) - 1;
  lock *lk = tolock(L);
  gilua_args a;
  int blocking;
  double timeout;
  if (nargs == 0) {  /* the common case: no option to read */
    if (!try_take(lk, me())) take(L, lk, -1);
    point();
    lua_pushvalue(L, 1);
    return 1;
  }
  gilua_args_init(&a, L, 2);
  blocking = gilua_arg_bool(&a, 0, "blocking", 1);
  gilua_arg(&a, 1, "timeout");
  timeout = gilua_timeout(L, -1, lk->rlock ? "RLock.acquire" : "Lock.acquire",
                          NULL, GILUA_NEG_LOCK);
  if (!blocking && timeout != GILUA_FOREVER)
    return gilua_raise(L, "ValueError", "can't specify a timeout for a non-blocking call");
  lua_pop(L, 1);
  if (!blocking) timeout = 0;
  if (take(L, lk, timeout)) {
    point();
    lua_pushvalue(L, 1);
  }
  else lua_pushboolean(L, 0);
  return 1;
}


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
  release(L, tolock(L));
  return 0;
}


static int l_locked (lua_State *L) {
  lua_pushboolean(L, tolock(L)->locked);
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
  point();
  return with_done(L, lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, with_done), 0);
}


static int l_tostring (lua_State *L) {
  lock *lk = tolock(L);
  lua_pushfstring(L, "<%s %s object at %p>", lk->locked ? "locked" : "unlocked",
                  lk->rlock ? "_thread.RLock" : "_thread.lock", (void *)lk);
  return 1;
}


static int l_gc (lua_State *L) {
  lock *lk = tolock(L);
  forget(L, lk);
  gilua_waitq_destroy(&lk->wq);
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
  gilua_waitq_init(&lk->wq, rlock ? "an RLock" : "a Lock", &lk->owner);
  lk->wq.obj = lk;
  luaL_setmetatable(L, rlock ? RLOCK_MT : LOCK_MT);
  return 1;
}


static int t_allocate_lock (lua_State *L) { return newlock(L, 0); }
static int t_rlock (lua_State *L) { return newlock(L, 1); }

/* }====================================================== */


/*
** {======================================================
** Condition's acquire and release
** =======================================================
*/

/* Both return what the lock's own method returned, as threading.lua's
** Condition did: the Condition for a true result, else false. */
static int cond_acquired (lua_State *L, int status, lua_KContext self) {
  (void)status;
  if (lua_toboolean(L, -1)) lua_pushvalue(L, (int)self);
  else lua_pushboolean(L, 0);
  return 1;
}


static int cond_released (lua_State *L, int status, lua_KContext ctx) {
  (void)L; (void)status; (void)ctx;
  return 0;
}


/*
** Condition:acquire(...): its lock's acquire. A C lock acquired without
** arguments is taken here; any other lock-like object, or arguments, go
** through the object's own acquire.
*/
static int c_acquire (lua_State *L) {
  int n = lua_gettop(L), lk_idx = n + 1, i;
  lock *lk;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "_lock");
  if (n == 1 && (lk = testud(L, lk_idx)) != NULL) {
    if (!try_take(lk, me())) take(L, lk, -1);
    point();
    lua_pushvalue(L, 1);
    return 1;
  }
  lua_getfield(L, lk_idx, "acquire");
  lua_pushvalue(L, lk_idx);
  for (i = 2; i <= n; i++) lua_pushvalue(L, i);
  lua_callk(L, n, 1, 1, cond_acquired);
  return cond_acquired(L, LUA_OK, 1);
}


/* Condition:release(), and its __close(self, err). */
static int c_release (lua_State *L) {
  int lk_idx = lua_gettop(L) + 1;
  lock *lk;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "_lock");
  if ((lk = testud(L, lk_idx)) != NULL) {
    release(L, lk);
    return 0;
  }
  lua_getfield(L, lk_idx, "release");
  lua_pushvalue(L, lk_idx);
  lua_callk(L, 1, 0, 0, cond_released);
  return 0;
}

/* }====================================================== */


/*
** {======================================================
** Semaphore's counter (threading.Semaphore and BoundedSemaphore keep one
** in their _sem field; the functions here are their methods)
** =======================================================
*/

typedef struct sem {
  lua_Integer value;
  lua_Integer bound;            /* BoundedSemaphore's initial value, or -1 */
  gilua_waitq wq;
} sem;


/* The counter of the Semaphore at index 1 (pushed). */
static sem *tosem (lua_State *L) {
  sem *s;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "_sem");
  s = testud(L, lua_gettop(L));
  if (s == NULL) luaL_argerror(L, 1, "Semaphore expected (no counter in _sem)");
  return s;
}


/* Python's "x must be T, not U" for threading.lua's checks, with U as
** gilua.args names it. */
static int badtype (lua_State *L, int idx, const char *fname,
                    const char *arg, const char *tname) {
  const char *got = luaL_typename(L, idx);
  if (luaL_getmetafield(L, idx, "__name") == LUA_TSTRING) got = lua_tostring(L, -1);
  else if (lua_isinteger(L, idx)) got = "integer";
  else if (lua_type(L, idx) == LUA_TNUMBER) got = "float";
  return gilua_raise(L, "TypeError", "%s(): argument '%s' must be %s, not %s",
                     fname, arg, tname, got);
}


/* Takes one unit, waiting at most 'timeout' seconds (negative: forever). */
static int sem_down (lua_State *L, sem *s, double timeout) {
  double until;
  if (s->value > 0) {
    s->value--;
    return 1;
  }
  if (timeout == 0) return 0;
  until = gilua_until(timeout);
  for (;;) {
    int intime = gilua_waitq_wait(L, &s->wq, until);
    if (s->value > 0) {
      s->value--;
      return 1;
    }
    if (!intime) return 0;
  }
}


/* acquire(blocking=true, timeout=nil) or acquire{blocking=, timeout=}:
** the Semaphore, or false. A negative timeout counts as 0, as Python's
** (the one rule of gilua_timeout). */
static int s_acquire (lua_State *L) {
  int nargs = lua_gettop(L) - 1, blocking = 1;
  double timeout = -1;
  sem *s;
  if (nargs > 0) {
    gilua_args a;
    gilua_args_init(&a, L, 2);
    blocking = gilua_arg_bool(&a, 0, "blocking", 1);
    if (gilua_arg(&a, 1, "timeout") != LUA_TNIL) {
      if (!blocking)
        return gilua_raise(L, "ValueError", "can't specify timeout for non-blocking acquire");
      timeout = gilua_timeout(L, -1, "Semaphore.acquire", NULL, GILUA_NEG_ZERO);
    }
    lua_pop(L, 1);
    if (!blocking) timeout = 0;
  }
  s = tosem(L);
  if (sem_down(L, s, timeout)) {
    point();
    lua_pushvalue(L, 1);
  }
  else lua_pushboolean(L, 0);
  return 1;
}


/* Gives back n units and wakes up to n waiters. */
static void sem_up (lua_State *L, sem *s, lua_Integer n) {
  if (s->bound >= 0 && s->value + n > s->bound)
    gilua_raise(L, "ValueError", "Semaphore released too many times");
  if (s->value > LUA_MAXINTEGER - n)  /* Python's int has no top; Lua's has */
    gilua_raise(L, "OverflowError", "Semaphore.release(): the value would pass math.maxinteger");
  s->value += n;
  if (s->wq.waiters > 0) {
    if (n >= s->wq.waiters) gilua_waitq_wake(&s->wq, 1);
    else while (n-- > 0) gilua_waitq_wake(&s->wq, 0);
  }
}


/* release(n=1) or release{n=} */
static int s_release (lua_State *L) {
  lua_Integer n = 1;
  if (lua_gettop(L) > 1) {
    gilua_args a;
    gilua_args_init(&a, L, 2);
    if (gilua_arg(&a, 0, "n") != LUA_TNIL) {
      int isint, arg = lua_gettop(L);
      n = lua_tointegerx(L, arg, &isint);
      if (lua_type(L, arg) != LUA_TNUMBER || !isint)
        return badtype(L, arg, tosem(L)->bound >= 0 ? "BoundedSemaphore.release"
                                                     : "Semaphore.release", "n", "integer");
      if (n < 1) return gilua_raise(L, "ValueError", "n must be one or more");
    }
  }
  sem_up(L, tosem(L), n);
  return 0;
}


/* __close(self, err): one unit back. */
static int s_close (lua_State *L) {
  sem_up(L, tosem(L), 1);
  return 0;
}


static int sem_value (lua_State *L) {
  sem *s = testud(L, 1);
  luaL_argcheck(L, s != NULL, 1, "semaphore counter expected");
  lua_pushinteger(L, s->value);
  return 1;
}


static int sem_gc (lua_State *L) {
  sem *s = testud(L, 1);
  if (s) {
    forget(L, s);
    gilua_waitq_destroy(&s->wq);
  }
  return 0;
}


/* semaphore(value, bound): a counter; bound -1 for none. */
static int t_semaphore (lua_State *L) {
  lua_Integer value = luaL_checkinteger(L, 1);
  lua_Integer bound = luaL_optinteger(L, 2, -1);
  sem *s;
  luaL_argcheck(L, value >= 0, 1, "must be >= 0");
  s = lua_newuserdatauv(L, sizeof *s, 0);
  s->value = value;
  s->bound = bound;
  gilua_waitq_init(&s->wq, "a Semaphore", NULL);
  luaL_setmetatable(L, SEM_MT);
  return 1;
}

/* }====================================================== */


/* Pushes a kind accepting the metatables at 'a' and 'b' (absolute
** indexes). */
static void newkind (lua_State *L, int a, int b) {
  kind *k = lua_newuserdatauv(L, sizeof *k, 0);
  k->mt[0] = lua_topointer(L, a);
  k->mt[1] = lua_topointer(L, b);
  k->last = NULL;
}


/* Sets the functions 'l' into the table at 't', closures over the kind at
** 'k' and its metatables at 'a' and 'b'. */
static void setclosures (lua_State *L, const luaL_Reg *l, int t, int k,
                         int a, int b) {
  lua_pushvalue(L, t);
  lua_pushvalue(L, k);
  lua_pushvalue(L, a);
  lua_pushvalue(L, b);
  luaL_setfuncs(L, l, NUPVALUES);
  lua_pop(L, 1);
}


void thread_openlocks (lua_State *L) {
  static const luaL_Reg lock_methods[] = {
    {"acquire", l_acquire}, {"release", l_release}, {"locked", l_locked},
    {"_is_owned", r_is_owned}, {"_release_save", r_release_save},
    {"_acquire_restore", r_acquire_restore}, {"with", l_with}, {NULL, NULL}
  };
  static const luaL_Reg lock_meta[] = {
    {"__close", l_release}, {"__tostring", l_tostring}, {"__gc", l_gc},
    {NULL, NULL}
  };
  static const luaL_Reg cond_funcs[] = {
    {"cond_acquire", c_acquire}, {"cond_release", c_release}, {NULL, NULL}
  };
  static const luaL_Reg sem_funcs[] = {
    {"sem_acquire", s_acquire}, {"sem_release", s_release},
    {"sem_close", s_close}, {NULL, NULL}
  };
  static const luaL_Reg sem_methods[] = {{"value", sem_value}, {NULL, NULL}};
  static const luaL_Reg sem_meta[] = {{"__gc", sem_gc}, {NULL, NULL}};
  int mod = lua_gettop(L), lmt, rmt, smt, locks, sems, mt;
  luaL_newmetatable(L, LOCK_MT);
  lmt = lua_gettop(L);
  luaL_newmetatable(L, RLOCK_MT);
  rmt = lua_gettop(L);
  luaL_newmetatable(L, SEM_MT);
  smt = lua_gettop(L);
  newkind(L, lmt, rmt);               /* Lock and RLock: one kind */
  locks = lua_gettop(L);
  newkind(L, smt, smt);
  sems = lua_gettop(L);
  for (mt = lmt; mt <= rmt; mt++) {
    lua_newtable(L);
    setclosures(L, lock_methods, lua_gettop(L), locks, lmt, rmt);
    lua_setfield(L, mt, "__index");
    setclosures(L, lock_meta, mt, locks, lmt, rmt);
    lua_pushliteral(L, "lock");
    lua_setfield(L, mt, "__name");
  }
  setclosures(L, cond_funcs, mod, locks, lmt, rmt);
  lua_newtable(L);
  setclosures(L, sem_methods, lua_gettop(L), sems, smt, smt);
  lua_setfield(L, smt, "__index");
  setclosures(L, sem_meta, smt, sems, smt, smt);
  setclosures(L, sem_funcs, mod, sems, smt, smt);
  lua_pushcfunction(L, t_allocate_lock);
  lua_setfield(L, mod, "allocate_lock");
  lua_pushcfunction(L, t_rlock);
  lua_setfield(L, mod, "RLock");
  lua_pushcfunction(L, t_semaphore);
  lua_setfield(L, mod, "semaphore");
  lua_settop(L, mod);
}
