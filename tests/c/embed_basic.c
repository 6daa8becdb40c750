/*
** embed_basic.c: libgilua embedded in a C host (TAP output).
**
** gilua_open, running a chunk, four host pthreads that gilua_attach and run
** a Lua function incrementing a global under a threading.Lock 10000 times
** each, gilua_detach, the total; GILUA_BEGIN/END_ALLOW_THREADS around a
** usleep lets another thread run Lua; gilua_close.
*/
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

#include "gilua.h"
#include "tap.h"

static lua_State *L;

#define THREADS 4
#define PER_THREAD 10000

typedef struct job {
  int status;          /* of the Lua call */
  int attached;        /* gilua_attach gave a state */
  char err[256];
} job;

static void *worker (void *arg) {
  job *j = arg;
  lua_State *T = gilua_attach(L);
  j->attached = T != NULL;
  if (T == NULL) return NULL;
  lua_getglobal(T, "bump");
  lua_pushinteger(T, PER_THREAD);
  j->status = gilua_pcall(T, 1, 0);
  if (j->status != LUA_OK) {
    const char *m = luaL_tolstring(T, -1, NULL);
    snprintf(j->err, sizeof j->err, "%s", m ? m : "?");
    lua_pop(T, 2);
  }
  gilua_detach(T);
  return NULL;
}

/* A host thread that ticks in Lua (sleeping between ticks) until told to stop. */
static void *ticker (void *arg) {
  int *status = arg;
  lua_State *T = gilua_attach(L);
  if (T == NULL) { *status = -1; return NULL; }
  *status = luaL_loadstring(T,
    "local time = require 'time'\n"
    "while not stop_ticking do ticks = ticks + 1; time.sleep(0.01) end");
  if (*status == LUA_OK) *status = gilua_pcall(T, 0, 0);
  if (*status != LUA_OK) lua_pop(T, 1);
  gilua_detach(T);
  return NULL;
}

static lua_Integer get_int (const char *name) {
  lua_Integer v;
  lua_getglobal(L, name);
  v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

int main (void) {
  pthread_t th[THREADS], tk;
  job jobs[THREADS];
  int i, status, all_ok, tk_status = 0;
  char buf[256];
  lua_Integer before, after;
  gilua_stats st;

  L = gilua_open();
  ok(L != NULL, "gilua_open returns a state");
  if (L == NULL) {
    printf("1..%d\n", ntest);
    return 1;
  }
  {  /* tests/c/embed_interp.c tests several at length */
    lua_State *L2 = gilua_open();
    ok(L2 != NULL && L2 != L, "a second gilua_open opens a second interpreter");
    if (L2 != NULL) gilua_close(L2);
  }

  status = luaL_loadstring(L,
    "threading = require 'threading'\n"
    "lock = threading.Lock()\n"
    "total = 0\n"
    "local function read() return total end\n"
    "function bump(n)\n"
    "  for _ = 1, n do\n"
    "    local _ <close> = lock:acquire()\n"
    "    local c = read()\n"
    "    total = c + 1\n"
    "  end\n"
    "end\n"
    "return 6 * 7");
  if (status == LUA_OK) status = gilua_pcall(L, 0, 1);
  ok(status == LUA_OK, "a chunk loads and runs");
  if (status != LUA_OK) diag("%s", lua_tostring(L, -1));
  ok(lua_tointeger(L, -1) == 42, "the chunk's result is on the stack");
  lua_pop(L, 1);

  /* Four host threads run Lua under the GIL. */
  memset(jobs, 0, sizeof jobs);
  GILUA_BEGIN_ALLOW_THREADS(L)
    for (i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, worker, &jobs[i]);
    for (i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
  GILUA_END_ALLOW_THREADS(L)
  all_ok = 1;
  for (i = 0; i < THREADS; i++) {
    if (!jobs[i].attached || jobs[i].status != LUA_OK) {
      all_ok = 0;
      snprintf(buf, sizeof buf, "thread %d: attached %d, status %d: %s",
               i, jobs[i].attached, jobs[i].status, jobs[i].err);
      diag("%s", buf);
    }
  }
  ok(all_ok, "four attached pthreads ran the Lua function without error");
  snprintf(buf, sizeof buf, "total = %lld, expected %d", (long long)get_int("total"),
           THREADS * PER_THREAD);
  ok(get_int("total") == THREADS * PER_THREAD, "the total under a threading.Lock is exact");
  if (get_int("total") != THREADS * PER_THREAD) diag("%s", buf);
  gilua_getstats(&st);
  ok(st.switches > 0, "the GIL changed hands between the host threads");

  /* The main thread still runs Lua after the workers detached. */
  status = luaL_dostring(L, "total = total + 1");
  ok(status == LUA_OK && get_int("total") == THREADS * PER_THREAD + 1,
     "the main thread runs Lua again after the others detached");

  /* GILUA_BEGIN/END_ALLOW_THREADS around a usleep: another thread runs Lua. */
  lua_pushinteger(L, 0);
  lua_setglobal(L, "ticks");
  lua_pushboolean(L, 0);
  lua_setglobal(L, "stop_ticking");
  GILUA_BEGIN_ALLOW_THREADS(L)
    pthread_create(&tk, NULL, ticker, &tk_status);
    usleep(50000);                     /* let it attach and start */
  GILUA_END_ALLOW_THREADS(L)
  before = get_int("ticks");
  {
    double t0 = now(), dt;
    GILUA_BEGIN_ALLOW_THREADS(L)
      usleep(300000);
    GILUA_END_ALLOW_THREADS(L)
    dt = now() - t0;
    ok(dt >= 0.29, "the usleep between BEGIN/END_ALLOW_THREADS took its time");
  }
  after = get_int("ticks");
  snprintf(buf, sizeof buf, "ticks during the 0.3 s usleep: %lld", (long long)(after - before));
  diag("%s", buf);
  ok(after - before >= 5, "another thread ran Lua while the host slept with the GIL released");
  lua_pushboolean(L, 1);
  lua_setglobal(L, "stop_ticking");
  GILUA_BEGIN_ALLOW_THREADS(L)
    pthread_join(tk, NULL);
  GILUA_END_ALLOW_THREADS(L)
  ok(tk_status == LUA_OK, "the ticking thread ended cleanly");

  /* Without releasing, the GIL stays with us: nobody ticks. */
  lua_pushboolean(L, 0);
  lua_setglobal(L, "stop_ticking");
  GILUA_BEGIN_ALLOW_THREADS(L)
    pthread_create(&tk, NULL, ticker, &tk_status);
    usleep(50000);
  GILUA_END_ALLOW_THREADS(L)
  before = get_int("ticks");
  usleep(200000);                      /* GIL held: no Lua elsewhere */
  after = get_int("ticks");
  ok(after == before, "while the host holds the GIL in C, no other thread runs Lua");
  lua_pushboolean(L, 1);
  lua_setglobal(L, "stop_ticking");
  GILUA_BEGIN_ALLOW_THREADS(L)
    pthread_join(tk, NULL);
  GILUA_END_ALLOW_THREADS(L)

  /* switch interval through the C API */
  gilua_setswitchinterval(0.01);
  ok(gilua_getswitchinterval() == 0.01, "gilua_setswitchinterval / gilua_getswitchinterval");
  gilua_setswitchinterval(0.005);

  /* gilua_close must return: the plan is printed only after it. */
  gilua_close(L);
  printf("1..%d\n", ntest);
  return nfail == 0 ? 0 : 1;
}
