/*
** synchronize.c: process-shared synchronisation for _multiprocessing
** (SemLock): a mutex and a condition variable in shared memory guard a
** small state. Kinds: a semaphore (Lock is one with maximum 1), a
** recursive lock, an event; Condition and Barrier are Lua on top.
*/
#include <errno.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "mp.h"

#define SYNC_MT "_multiprocessing.SemLock"

/* A semaphore counts up to Linux's SEM_VALUE_MAX, as Python's does. */
#define SEM_MAX 2147483647L

typedef struct syncref { mp_sync *s; int fd; } syncref;


void mp_sync_init (mp_sync *s, int kind) {
  pthread_mutexattr_t ma;
  pthread_condattr_t ca;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&s->m, &ma);
  pthread_mutexattr_destroy(&ma);
  pthread_condattr_init(&ca);
  pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->c, &ca);
  pthread_condattr_destroy(&ca);
  s->kind = kind;
}


/* The short internal mutex; a holder that died leaves it consistent
** (it only guards a few fields, which are always whole). */
void mp_slock (mp_sync *s) {
  if (pthread_mutex_lock(&s->m) == EOWNERDEAD) pthread_mutex_consistent(&s->m);
}

void mp_sunlock (mp_sync *s) {
  pthread_mutex_unlock(&s->m);
}


/* Waits on s->c (s->m held): 1 woken, 0 timed out, -1 Ctrl-C. */
int mp_swait (mp_sync *s, const struct timespec *deadline) {
  int r = gilua_condwait(&s->c, &s->m, deadline);
  if (r == EOWNERDEAD) { pthread_mutex_consistent(&s->m); return 1; }
  if (r == EINTR) return -1;
  return r != ETIMEDOUT;
}


static mp_sync *checksync (lua_State *L) {
  syncref *r = luaL_checkudata(L, 1, SYNC_MT);
  return r->s;
}


static pid_t mytid (void) {
  static __thread pid_t tid;
  static __thread pid_t forpid;
  pid_t pid = getpid();
  if (tid == 0 || forpid != pid) {
    tid = (pid_t)syscall(SYS_gettid);
    forpid = pid;
  }
  return tid;
}


/* semlock(kind, value, maxvalue): kind "sem", "rlock", "event". */
static int l_semlock (lua_State *L) {
  static const char *const kinds[] = {"sem", "rlock", "event", NULL};
  int kind = luaL_checkoption(L, 1, NULL, kinds);
  long value = (long)luaL_optinteger(L, 2, 1);
  long maxvalue = (long)luaL_optinteger(L, 3, -1);
  syncref *r = lua_newuserdatauv(L, sizeof *r, 0);
  r->s = NULL;
  r->fd = -1;
  luaL_setmetatable(L, SYNC_MT);
  r->s = mp_shmalloc(L, sizeof(mp_sync), &r->fd);
  mp_sync_init(r->s, kind);
  r->s->value = value;
  r->s->maxvalue = maxvalue;
  return 1;
}


/* semlock_from(fd): a lock passed to a spawned child */
static int l_semlock_from (lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  syncref *r = lua_newuserdatauv(L, sizeof *r, 0);
  r->s = NULL;
  r->fd = -1;
  luaL_setmetatable(L, SYNC_MT);
  r->s = mp_shmmap(L, fd, sizeof(mp_sync));
  r->fd = fd;
  return 1;
}


static int sync_gc (lua_State *L) {
  syncref *r = luaL_checkudata(L, 1, SYNC_MT);
  if (r->s) munmap(r->s, sizeof(mp_sync));
  r->s = NULL;
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
  return 0;
}


static int sync_fd (lua_State *L) {
  syncref *r = luaL_checkudata(L, 1, SYNC_MT);
  lua_pushinteger(L, r->fd);
  return 1;
}


/* acquire(blocking, timeout) -> true, or false if not acquired */
static int sync_acquire (lua_State *L) {
  mp_sync *s = checksync(L);
  gilua_args a;
  int block, got = 0, intr = 0;
  double timeout;
  struct timespec ts, *dl = NULL;
  pid_t pid = getpid(), tid = mytid();
  gilua_args_init(&a, L, 2);
  block = gilua_arg_bool(&a, 0, "blocking", 1);
  gilua_arg(&a, 1, "timeout");
  timeout = gilua_timeout(L, -1, "acquire", NULL, GILUA_NEG_ZERO);
  lua_pop(L, 1);
  if (!block) timeout = 0;
  if (timeout >= 0) { gilua_deadline(&ts, timeout); dl = &ts; }
  GILUA_BEGIN_ALLOW_THREADS(L)
    mp_slock(s);
    if (s->kind == MP_RLOCK) {
      if (s->count > 0 && s->opid == pid && s->otid == tid) { s->count++; got = 1; }
      else {
        for (;;) {
          int w;
          if (s->count == 0) { s->count = 1; got = 1; break; }
          if (timeout == 0) break;
          w = mp_swait(s, dl);
          if (w == 0) break;
          if (w < 0) { intr = 1; break; }
        }
      }
    }
    else {
      for (;;) {
        int w;
        if (s->value > 0) { s->value--; got = 1; break; }
        if (timeout == 0) break;
        w = mp_swait(s, dl);
        if (w == 0) break;
        if (w < 0) { intr = 1; break; }
      }
    }
    if (got) { s->opid = pid; s->otid = tid; }
    mp_sunlock(s);
  GILUA_END_ALLOW_THREADS(L)
  if (intr) gilua_checkinterrupt(L);
  lua_pushboolean(L, got);
  return 1;
}


static int sync_release (lua_State *L) {
  mp_sync *s = checksync(L);
  const char *err = NULL, *cls = "ValueError";
  mp_slock(s);
  if (s->kind == MP_RLOCK) {
    if (s->count == 0 || s->opid != getpid() || s->otid != mytid()) {
      err = "attempt to release recursive lock not owned by thread";
      cls = "AssertionError";
    }
    else if (--s->count == 0) pthread_cond_signal(&s->c);
  }
  else if ((s->maxvalue > 0 && s->value >= s->maxvalue) || s->value >= SEM_MAX)
    err = "semaphore or lock released too many times";
  else {
    s->value++;
    pthread_cond_signal(&s->c);
  }
  mp_sunlock(s);
  if (err) return gilua_raise(L, cls, "%s", err);
  return 0;
}


/* RLock: count held by the calling thread; Lock/Semaphore: the value. */
static int sync_count (lua_State *L) {
  mp_sync *s = checksync(L);
  long n;
  mp_slock(s);
  if (s->kind == MP_RLOCK)
    n = (s->opid == getpid() && s->otid == mytid()) ? s->count : 0;
  else n = s->value;
  mp_sunlock(s);
  lua_pushinteger(L, n);
  return 1;
}


static int sync_is_mine (lua_State *L) {
  mp_sync *s = checksync(L);
  int mine;
  mp_slock(s);
  mine = s->opid == getpid() && s->otid == mytid() &&
         (s->kind == MP_RLOCK ? s->count > 0 : s->value == 0);
  mp_sunlock(s);
  lua_pushboolean(L, mine);
  return 1;
}


static int sync_locked (lua_State *L) {
  mp_sync *s = checksync(L);
  int l;
  mp_slock(s);
  l = s->kind == MP_RLOCK ? s->count > 0 : s->value == 0;
  mp_sunlock(s);
  lua_pushboolean(L, l);
  return 1;
}


/* Events: value is the flag. */
static int ev_set (lua_State *L) {
  mp_sync *s = checksync(L);
  mp_slock(s);
  s->value = 1;
  pthread_cond_broadcast(&s->c);
  mp_sunlock(s);
  return 0;
}


static int ev_clear (lua_State *L) {
  mp_sync *s = checksync(L);
  mp_slock(s);
  s->value = 0;
  mp_sunlock(s);
  return 0;
}


static int ev_is_set (lua_State *L) {
  mp_sync *s = checksync(L);
  int v;
  mp_slock(s);
  v = s->value != 0;
  mp_sunlock(s);
  lua_pushboolean(L, v);
  return 1;
}


static int ev_wait (lua_State *L) {
  mp_sync *s = checksync(L);
  double timeout = gilua_timeout(L, 2, "Event.wait", NULL, GILUA_NEG_ZERO);
  struct timespec ts, *dl = NULL;
  int v, intr = 0;
  if (timeout >= 0) { gilua_deadline(&ts, timeout); dl = &ts; }
  GILUA_BEGIN_ALLOW_THREADS(L)
    mp_slock(s);
    while (s->value == 0) {
      int w = mp_swait(s, dl);
      if (w == 0) break;
      if (w < 0) { intr = 1; break; }
    }
    v = s->value != 0;
    mp_sunlock(s);
  GILUA_END_ALLOW_THREADS(L)
  if (intr) gilua_checkinterrupt(L);
  lua_pushboolean(L, v);
  return 1;
}


static const luaL_Reg sync_methods[] = {
  {"acquire", sync_acquire},
  {"release", sync_release},
  {"_fd", sync_fd},
  {"_count", sync_count},
  {"_is_mine", sync_is_mine},
  {"locked", sync_locked},
  {"set", ev_set},
  {"clear", ev_clear},
  {"is_set", ev_is_set},
  {"wait", ev_wait},
  {NULL, NULL}
};



static const luaL_Reg funcs[] = {
  {"semlock", l_semlock},
  {"semlock_from", l_semlock_from},
  {NULL, NULL}
};


void mp_open_synchronize (lua_State *L) {
  static const luaL_Reg meta[] = {{"__gc", sync_gc}, {NULL, NULL}};
  gilua_newclass(L, SYNC_MT, sync_methods, meta);
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
}
