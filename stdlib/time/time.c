/*
** time.c: Python's time module (the part the course uses): sleep releases
** the GIL; clocks are seconds as floats. Under the deterministic scheduler
** sleep waits on the virtual clock, which time, monotonic and
** perf_counter read; time() starts at 2000-01-01 00:00:00 UTC then, as Go's
** synctest's clock does, so that a run prints the same dates every time.
*/
#include <time.h>

#include "gilua_vm.h"


#define VIRTUAL_EPOCH 946684800.0   /* 2000-01-01 00:00:00 UTC */

#define scheduled()  gilua_sched_on(gilua_ts())


static double clock_secs (clockid_t id) {
  struct timespec t;
  if (id != CLOCK_THREAD_CPUTIME_ID && id != CLOCK_PROCESS_CPUTIME_ID &&
      scheduled())
    return (id == CLOCK_REALTIME ? VIRTUAL_EPOCH : 0) + gilua_clock();
  clock_gettime(id, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}


static lua_Integer clock_ns (clockid_t id) {
  struct timespec t;
  if (scheduled()) {
    double v = gilua_clock();
    return (id == CLOCK_REALTIME ? (lua_Integer)VIRTUAL_EPOCH * 1000000000 : 0)
           + (lua_Integer)(v * 1e9 + 0.5);
  }
  clock_gettime(id, &t);
  return (lua_Integer)t.tv_sec * 1000000000 + t.tv_nsec;
}


static int t_sleep (lua_State *L) {
  double secs;
  int interrupted;
  luaL_checknumber(L, 1);
  secs = gilua_timeout(L, 1, "time.sleep", "secs", GILUA_NEG_ERROR);
  if (scheduled()) {
    gilua_sched_note(0, NULL, "time.sleep(%g)", secs);
    gilua_sched_wait(L, NULL, gilua_until(secs));
    return 0;
  }
  GILUA_BEGIN_ALLOW_THREADS(L)
    interrupted = gilua_nap(secs);
  GILUA_END_ALLOW_THREADS(L)
  if (interrupted) gilua_checkinterrupt(L);
  return 0;
}


static int t_time (lua_State *L) {
  lua_pushnumber(L, clock_secs(CLOCK_REALTIME));
  return 1;
}


static int t_time_ns (lua_State *L) {
  lua_pushinteger(L, clock_ns(CLOCK_REALTIME));
  return 1;
}


static int t_monotonic (lua_State *L) {
  lua_pushnumber(L, clock_secs(CLOCK_MONOTONIC));
  return 1;
}


static int t_monotonic_ns (lua_State *L) {
  lua_pushinteger(L, clock_ns(CLOCK_MONOTONIC));
  return 1;
}


static int t_thread_time (lua_State *L) {
  lua_pushnumber(L, clock_secs(CLOCK_THREAD_CPUTIME_ID));
  return 1;
}


static int t_process_time (lua_State *L) {
  lua_pushnumber(L, clock_secs(CLOCK_PROCESS_CPUTIME_ID));
  return 1;
}


static const luaL_Reg funcs[] = {
  {"sleep", t_sleep},
  {"time", t_time},
  {"time_ns", t_time_ns},
  {"monotonic", t_monotonic},
  {"monotonic_ns", t_monotonic_ns},
  {"perf_counter", t_monotonic},      /* CLOCK_MONOTONIC, as CPython on Linux */
  {"perf_counter_ns", t_monotonic_ns},
  {"thread_time", t_thread_time},
  {"process_time", t_process_time},
  {NULL, NULL}
};


int luaopen_gilua_time (lua_State *L) {
  luaL_newlib(L, funcs);
  return 1;
}
