/*
** embed_interp.c: several interpreters in a C host (TAP output).
**
** - gilua_open while an interpreter is open opens another one, with its
**   own globals and its own GIL; the opening thread runs in the new one
**   until it closes it, then holds the first one's GIL again;
** - host threads attached to different interpreters run CPU-bound Lua in
**   parallel: neither GIL sees a drop request, and their runs overlap;
** - a host thread attached to one interpreter attaches to another one
**   (leaving the first, GIL released) and detaches back into it; it cannot
**   attach twice to the interpreter it runs in;
** - the switch interval and the statistics are per interpreter;
** - Lua code sees the host's interpreters (concurrent.interpreters) and
**   may not run code in them;
** - closing in order, attaching to a closed one fails, a new main
**   interpreter opens after.
*/
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <lua.h>
#include <lauxlib.h>

#include "gilua.h"
#include "tap.h"

/* The global 'name' of T, as tostring gives it. */
static const char *getstr (lua_State *T, const char *name, char *buf, size_t n) {
  lua_getglobal(T, name);
  snprintf(buf, n, "%s", luaL_tolstring(T, -1, NULL));
  lua_pop(T, 2);
  return buf;
}

static lua_State *L1, *L2;


/*
** {======================================================
** Host threads, one per interpreter, CPU-bound
** =======================================================
*/

typedef struct job {
  lua_State *L;
  int attached, status;
  double start, end;
  unsigned long drops;
  double interval;
} job;

static void *cpu_worker (void *arg) {
  job *j = arg;
  lua_State *T = gilua_attach(j->L);
  gilua_stats st;
  j->attached = (T != NULL);
  if (T == NULL) return NULL;
  gilua_resetstats();
  j->interval = gilua_getswitchinterval();
  j->start = now();
  j->status = dostring(T, "local s = 0 for i = 1, 3e7 do s = s + i % 7 end work_done = s");
  j->end = now();
  gilua_getstats(&st);
  j->drops = st.drop_requests;
  gilua_detach(T);
  return NULL;
}

/* }====================================================== */


/*
** {======================================================
** A thread that moves from one interpreter to the other
** =======================================================
*/

typedef struct mover {
  int in1, in2, twice, back, hadgil, sees1, sees2;
} mover;

static void *moving (void *arg) {
  mover *m = arg;
  char buf[64];
  lua_State *T1 = gilua_attach(L1), *T2;
  m->in1 = (T1 != NULL);
  if (T1 == NULL) return NULL;
  dostring(T1, "mover_mark = 'one'");
  m->twice = (gilua_attach(L1) == NULL);
  T2 = gilua_attach(L2);                 /* leaves L1, GIL released */
  m->in2 = (T2 != NULL);
  if (T2 != NULL) {
    m->sees2 = strcmp(getstr(T2, "mover_mark", buf, sizeof buf), "nil") == 0;
    dostring(T2, "mover_mark = 'two'");
    gilua_detach(T2);                    /* back in L1, holding its GIL */
  }
  m->hadgil = gilua_hasgil();
  m->sees1 = strcmp(getstr(T1, "mover_mark", buf, sizeof buf), "one") == 0;
  m->back = (dostring(T1, "mover_back = true") == LUA_OK);
  gilua_detach(T1);
  return NULL;
}

/* }====================================================== */


int main (void) {
  char buf[128];
  pthread_t th[2], mv;
  job jobs[2];
  mover m;
  gilua_stats st;
  int i;

  L1 = gilua_open();
  ok(L1 != NULL, "gilua_open: the main interpreter");
  if (L1 == NULL) {
    printf("1..%d\n", ntest);
    return 1;
  }
  dostring(L1, "who = 'one'");
  gilua_setswitchinterval(0.002);
  L2 = gilua_open();
  ok(L2 != NULL && L2 != L1, "gilua_open again: a second interpreter");
  ok(gilua_hasgil(), "the opening thread holds the new one's GIL");
  ok(strcmp(getstr(L2, "who", buf, sizeof buf), "nil") == 0,
     "its globals are its own");
  dostring(L2, "who = 'two'");
  ok(gilua_getswitchinterval() == 0.005, "its switch interval is its own (the default)");
  dostring(L2,
    "local interpreters = require 'concurrent.interpreters'\n"
    "local seen = {}\n"
    "for _, i in ipairs(interpreters.list_all()) do seen[#seen + 1] = i.id .. ':' .. i.whence end\n"
    "listed = table.concat(seen, ',')\n"
    "me = interpreters.get_current().id\n"
    "local ok, e = pcall(interpreters.get_main().exec, interpreters.get_main(), 'x = 1')\n"
    "refused = not ok and interpreters.InterpreterError:is(e)\n");
  getstr(L2, "listed", buf, sizeof buf);
  ok(strstr(buf, "0:runtime init") != NULL && strstr(buf, ":C-API") != NULL,
     "Lua lists the host's interpreters: the main one, and this one from the C-API");
  diag("list_all: %s", buf);
  ok(strcmp(getstr(L2, "refused", buf, sizeof buf), "true") == 0,
     "Lua may not run code in an interpreter its host runs (InterpreterError)");

  /* Two host threads, one in each interpreter, CPU-bound. The opening
  ** thread runs in L2: it lets L2's GIL go while it waits. */
  memset(jobs, 0, sizeof jobs);
  jobs[0].L = L1;
  jobs[1].L = L2;
  GILUA_BEGIN_ALLOW_THREADS(L2)
    for (i = 0; i < 2; i++) pthread_create(&th[i], NULL, cpu_worker, &jobs[i]);
    for (i = 0; i < 2; i++) pthread_join(th[i], NULL);
  GILUA_END_ALLOW_THREADS(L2)
  ok(jobs[0].attached && jobs[1].attached, "host threads attach to either interpreter");
  ok(jobs[0].status == LUA_OK && jobs[1].status == LUA_OK, "... and run Lua there");
  ok(jobs[0].interval == 0.002 && jobs[1].interval == 0.005,
     "each sees its interpreter's switch interval");
  ok(jobs[0].start < jobs[1].end && jobs[1].start < jobs[0].end,
     "their CPU-bound runs overlapped in time");
  ok(jobs[0].drops == 0 && jobs[1].drops == 0,
     "no drop request in either interpreter: a GIL each");
  diag("runs: %.3f-%.3f s and %.3f-%.3f s", 0.0, jobs[0].end - jobs[0].start,
       jobs[1].start - jobs[0].start, jobs[1].end - jobs[0].start);

  /* A thread attached to L1 attaches to L2 and back. */
  memset(&m, 0, sizeof m);
  GILUA_BEGIN_ALLOW_THREADS(L2)
    pthread_create(&mv, NULL, moving, &m);
    pthread_join(mv, NULL);
  GILUA_END_ALLOW_THREADS(L2)
  ok(m.in1 && m.in2, "a host thread attached to one interpreter attaches to another");
  ok(m.twice, "it cannot attach twice to the one it runs in");
  ok(m.sees2, "the second one's globals are not the first one's");
  ok(m.hadgil && m.sees1 && m.back,
     "detaching from the second puts it back in the first, holding its GIL");
  ok(strcmp(getstr(L2, "mover_mark", buf, sizeof buf), "two") == 0,
     "what it did in the second one stayed there");

  gilua_getstats(&st);
  ok(st.threads >= 3, "L2's statistics list its own threads (opener, worker, mover)");
  gilua_close(L2);
  ok(gilua_hasgil(), "closing the second one: the opening thread holds the first one's GIL again");
  ok(strcmp(getstr(L1, "who", buf, sizeof buf), "one") == 0, "... and runs Lua there");
  ok(strcmp(getstr(L1, "mover_back", buf, sizeof buf), "true") == 0,
     "the mover's work in the first one is there");
  ok(gilua_getswitchinterval() == 0.002, "the first one's switch interval");
  ok(gilua_attach(L2) == NULL, "attaching to a closed interpreter fails");
  dostring(L1, "n_open = #require('concurrent.interpreters').list_all()");
  ok(strcmp(getstr(L1, "n_open", buf, sizeof buf), "1") == 0, "only the main interpreter is left");
  gilua_close(L1);
  ok(!gilua_hasgil(), "after the last close the thread holds no GIL");
  L1 = gilua_open();
  ok(L1 != NULL, "a new main interpreter opens after");
  ok(L1 != NULL && dostring(L1, "assert(require('concurrent.interpreters').get_current().id == 0)") == LUA_OK,
     "... with id 0");
  if (L1 != NULL) gilua_close(L1);
  printf("1..%d\n", ntest);
  return nfail ? 1 : 0;
}
