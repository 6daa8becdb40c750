/*
** embed_api.c: the embedding API from C (TAP output).
**
** - attach/detach from many host threads at once, over and over, with a
**   Lua thread running beside them (TSan checks that the GIL excludes);
** - gilua_release/gilua_acquire nest, from the main thread and from a C
**   function that Lua calls in a coroutine of an attached thread;
** - errors raised in Lua reach the host: exception objects, strings,
**   runtime errors, with tracebacks; gilua_report prints them;
** - per-thread statistics as C structs; tracing from C;
** - Ctrl-C as a host drives it: gilua_sigint, gilua_setinterrupt from
**   another thread stopping running Lua code, a sleep and a C function
**   blocked without the GIL (gilua_interrupt_pending, gilua_checkinterrupt);
** - gilua_close with live threads: it waits for the non-daemon ones,
**   parks the daemon ones and host threads that still want the GIL, lets a
**   released host thread detach; a new interpreter opens afterwards and
**   the parked threads stay parked;
** - the GIL's policies: chosen before gilua_open, an interpreter opened
**   and closed under each, host threads attaching, blocking and counting
**   under a Lock beside a Lua thread while another host thread, with no
**   state, changes the policy under them.
*/
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

#include "gilua.h"
#include "tap.h"

static void nap (double secs) {
  struct timespec t;
  t.tv_sec = (time_t)secs;
  t.tv_nsec = (long)((secs - (double)t.tv_sec) * 1e9);
  while (nanosleep(&t, &t) == -1 && errno == EINTR)
    ;
}

static lua_State *L;

static lua_Integer getint (lua_State *T, const char *name) {
  lua_Integer v;
  lua_getglobal(T, name);
  v = lua_tointeger(T, -1);
  lua_pop(T, 1);
  return v;
}


/*
** {======================================================
** Attach and detach from many threads
** =======================================================
*/

#define NATTACH 12
#define CYCLES 25

typedef struct att { int id, failures; } att;

/* Each cycle: attach, bump a global with the C API (no Lua instruction
** runs, so no hook can preempt the read-modify-write: only the GIL keeps
** it whole), run a little Lua, detach. */
static void *attacher (void *arg) {
  att *a = arg;
  int i;
  char name[32];
  for (i = 0; i < CYCLES; i++) {
    lua_State *T = gilua_attach(L);
    if (T == NULL) {
      a->failures++;
      continue;
    }
    snprintf(name, sizeof name, "attach-%d", a->id);
    gilua_setthreadname(name);
    if (!gilua_hasgil()) a->failures++;
    lua_getglobal(T, "attached");
    lua_pushinteger(T, lua_tointeger(T, -1) + 1);
    lua_setglobal(T, "attached");
    lua_pop(T, 1);
    if (dostring(T, "local s = 0; for i = 1, 2000 do s = s + i end; "
                    "assert(s == 2001000)") != LUA_OK)
      a->failures++;
    if (lua_gettop(T) != 0) a->failures++;
    gilua_detach(T);
    if (gilua_hasgil()) a->failures++;
  }
  return NULL;
}

static void test_attach (void) {
  pthread_t th[NATTACH];
  att a[NATTACH];
  int i, failures = 0;
  double t0;
  enum { CAP = 2 * NATTACH + 8 };
  gilua_threadstats ts[CAP];
  int n, named = 0, mainseen = 0;
  gilua_resetstats();
  dostring(L, "attached = 0; spinning = true\n"
              "spinner = require('threading').Thread{name = 'lua-spinner',\n"
              "  target = function() local n = 0\n"
              "    while spinning do n = n + 1 end end}\n"
              "spinner:start()");
  t0 = now();
  GILUA_BEGIN_ALLOW_THREADS(L)
    for (i = 0; i < NATTACH; i++) {
      a[i].id = i;
      a[i].failures = 0;
      pthread_create(&th[i], NULL, attacher, &a[i]);
    }
    for (i = 0; i < NATTACH; i++) pthread_join(th[i], NULL);
  GILUA_END_ALLOW_THREADS(L)
  for (i = 0; i < NATTACH; i++) failures += a[i].failures;
  diag("%d threads x %d attach/detach cycles in %.2f s", NATTACH, CYCLES,
       now() - t0);
  ok(failures == 0, "every attach gave a state holding the GIL, every detach let it go");
  ok(getint(L, "attached") == NATTACH * CYCLES,
     "a global bumped through the C API by all of them is exact");
  dostring(L, "spinning = false; spinner:join()");

  n = gilua_getthreadstats(ts, CAP);
  for (i = 0; i < n && i < CAP; i++) {
    if (strncmp(ts[i].name, "attach-", 7) == 0 && !ts[i].alive &&
        ts[i].acquisitions >= 1)
      named++;
    if (strcmp(ts[i].name, "MainThread") == 0 && ts[i].alive && i == 0)
      mainseen = 1;
  }
  diag("%d thread records", n);
  ok(n >= NATTACH * CYCLES, "gilua_getthreadstats counts every thread that attached");
  /* oldest first: MainThread, lua-spinner, then the host threads */
  ok(named == CAP - 2, "finished host threads keep their name and figures");
  ok(mainseen, "the main thread comes first and is alive");
  ok(gilua_getthreadstats(NULL, 0) == n, "max 0 only counts");
}

/* }====================================================== */


/*
** {======================================================
** Nested release/acquire
** =======================================================
*/

static int gil_free_seen;

/* A "library" blocking call: wraps itself in the macros, whatever the
** caller did already. */
static void library_wait (lua_State *T, double secs) {
  GILUA_BEGIN_ALLOW_THREADS(T)
    nap(secs);
  GILUA_END_ALLOW_THREADS(T)
}

/* host_block(): releases the GIL, calls the library (nested release),
** then waits again: the GIL must still be free after the inner END. */
static int l_host_block (lua_State *T) {
  lua_Integer before, after;
  lua_getglobal(T, "ticks");
  before = lua_tointeger(T, -1);
  lua_pop(T, 1);
  GILUA_BEGIN_ALLOW_THREADS(T)
    library_wait(T, 0.05);
    gil_free_seen = !gilua_hasgil();   /* after the inner END: still free */
    nap(0.15);
  GILUA_END_ALLOW_THREADS(T)
  lua_getglobal(T, "ticks");
  after = lua_tointeger(T, -1);
  lua_pop(T, 1);
  lua_pushinteger(T, after - before);
  lua_pushboolean(T, gilua_hasgil());
  return 2;
}

static void *nested_worker (void *arg) {
  int *status = arg;
  lua_State *T = gilua_attach(L);
  lua_pushcfunction(T, l_host_block);
  lua_setglobal(T, "host_block");
  /* called from a coroutine, so T is not the state that calls back */
  *status = dostring(T,
    "local co = coroutine.wrap(function() return host_block() end)\n"
    "nested_ticks, nested_held = co()");
  gilua_detach(T);
  return NULL;
}

static void test_nested (void) {
  pthread_t th;
  int status = -1;
  ok(gilua_hasgil(), "the main thread holds the GIL after gilua_open");
  gilua_release(L);
  ok(!gilua_hasgil(), "gilua_release lets it go");
  gilua_release(L);
  gilua_acquire(L);
  ok(!gilua_hasgil(), "an inner release/acquire pair leaves it released");
  gilua_acquire(L);
  ok(gilua_hasgil(), "the outer gilua_acquire takes it back");

  dostring(L, "ticks = 0; ticking = true\n"
              "ticker = require('threading').Thread{name = 'ticker',\n"
              "  target = function() local time = require 'time'\n"
              "    while ticking do ticks = ticks + 1; time.sleep(0.002) end end}\n"
              "ticker:start()");
  GILUA_BEGIN_ALLOW_THREADS(L)
    pthread_create(&th, NULL, nested_worker, &status);
    pthread_join(th, NULL);
  GILUA_END_ALLOW_THREADS(L)
  dostring(L, "ticking = false; ticker:join()");
  ok(status == LUA_OK, "a C function called from a coroutine of an attached thread released and took back the GIL");
  ok(gil_free_seen, "after a nested END_ALLOW_THREADS the GIL is still released");
  diag("ticks while the host thread was in the released region: %lld",
       (long long)getint(L, "nested_ticks"));
  ok(getint(L, "nested_ticks") >= 10, "other threads ran Lua all through the released region");
  lua_getglobal(L, "nested_held");
  ok(lua_toboolean(L, -1), "the outer END took the GIL back");
  lua_pop(L, 1);
}

/* }====================================================== */


/*
** {======================================================
** Errors raised in Lua reach the host
** =======================================================
*/

typedef struct errs {
  int st_exc, st_str, st_rt;
  char exc[200], exc_tb[400], str[400], rt[400];
  int exc_is_table;
} errs;

static void copystr (char *dst, size_t n, const char *s) {
  snprintf(dst, n, "%s", s ? s : "(null)");
}

static void *erring (void *arg) {
  errs *e = arg;
  lua_State *T = gilua_attach(L);
  /* an exception object */
  luaL_loadstring(T, "error(ValueError('bad value'))");
  e->st_exc = gilua_pcall(T, 0, 0);
  e->exc_is_table = lua_istable(T, -1);
  copystr(e->exc, sizeof e->exc, luaL_tolstring(T, -1, NULL));
  lua_pop(T, 1);
  lua_getfield(T, -1, "traceback");
  copystr(e->exc_tb, sizeof e->exc_tb, lua_tostring(T, -1));
  lua_pop(T, 2);
  /* a string */
  luaL_loadstring(T, "local function f() error('boom') end f()");
  e->st_str = gilua_pcall(T, 0, 0);
  copystr(e->str, sizeof e->str, lua_tostring(T, -1));
  lua_pop(T, 1);
  /* a runtime error in a function the host calls */
  luaL_loadstring(T, "return function(t) return t.x.y end");
  gilua_pcall(T, 0, 1);
  lua_pushnil(T);
  e->st_rt = gilua_pcall(T, 1, 0);
  copystr(e->rt, sizeof e->rt, lua_tostring(T, -1));
  lua_pop(T, 1);
  gilua_detach(T);
  return NULL;
}

static void test_errors (void) {
  pthread_t th;
  errs e;
  char path[] = "/tmp/gilua-report-XXXXXX";
  char buf[1024];
  int fd, saved;
  ssize_t n;
  memset(&e, 0, sizeof e);
  GILUA_BEGIN_ALLOW_THREADS(L)
    pthread_create(&th, NULL, erring, &e);
    pthread_join(th, NULL);
  GILUA_END_ALLOW_THREADS(L)
  ok(e.st_exc == LUA_ERRRUN && e.exc_is_table,
     "an exception object raised in an attached thread comes back as the error object");
  ok(strcmp(e.exc, "ValueError: bad value") == 0, "tostring gives 'ValueError: bad value'");
  if (strcmp(e.exc, "ValueError: bad value") != 0) diag("got: %s", e.exc);
  ok(strstr(e.exc_tb, "stack traceback") != NULL, "the exception carries its traceback");
  ok(e.st_str == LUA_ERRRUN && strstr(e.str, "boom") != NULL &&
     strstr(e.str, "stack traceback") != NULL && strstr(e.str, "in local 'f'") != NULL,
     "a string error comes back with a traceback");
  if (strstr(e.str, "in local 'f'") == NULL) diag("got: %s", e.str);
  ok(e.st_rt == LUA_ERRRUN && strstr(e.rt, "attempt to index") != NULL,
     "a runtime error in a function the host called is reported");
  ok(lua_gettop(L) == 0, "the main stack is untouched");

  /* gilua_report prints it on stderr */
  fd = mkstemp(path);
  fflush(stderr);
  saved = dup(2);
  dup2(fd, 2);
  luaL_loadstring(L, "error(RuntimeError('reported'))");
  gilua_pcall(L, 0, 0);
  gilua_report(L);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  lseek(fd, 0, SEEK_SET);
  n = read(fd, buf, sizeof buf - 1);
  buf[n > 0 ? n : 0] = '\0';
  close(fd);
  unlink(path);
  ok(strstr(buf, "RuntimeError: reported") != NULL && strstr(buf, "stack traceback") != NULL,
     "gilua_report prints the message and the traceback");
  ok(lua_gettop(L) == 0, "gilua_report pops the error");
}

/* }====================================================== */


/*
** {======================================================
** Statistics and tracing from C
** =======================================================
*/

static void test_trace (void) {
  char json[] = "/tmp/gilua-trace-XXXXXX", html[64];
  FILE *f;
  char buf[4096];
  size_t n;
  int fd = mkstemp(json);
  gilua_stats st;
  close(fd);
  snprintf(html, sizeof html, "%s.html", json);
  ok(gilua_trace_stop() == 1, "gilua_trace_stop without a trace returns 1");
  ok(gilua_trace_start(json) == 0, "gilua_trace_start");
  ok(gilua_trace_start(json) == -1 && errno == EBUSY, "a second trace is refused with EBUSY");
  gilua_resetstats();
  dostring(L, "local threading = require 'threading'\n"
              "local function spin() local s = 0; for i = 1, 3e6 do s = s + i end end\n"
              "local a = threading.Thread{name = 'spin-a', target = spin}\n"
              "local b = threading.Thread{name = 'spin-b', target = spin}\n"
              "a:start(); b:start(); a:join(); b:join()");
  ok(gilua_trace_stop() == 0, "gilua_trace_stop writes the file");
  f = fopen(json, "r");
  n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  buf[n] = '\0';
  if (f) fclose(f);
  ok(strncmp(buf, "{\"traceEvents\":[", 16) == 0 && strstr(buf, "\"spin-a\"") != NULL,
     "the trace is trace-event JSON naming the threads");
  ok(gilua_timeline(json, html) == 0, "gilua_timeline makes the page");
  f = fopen(html, "r");
  n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  buf[n] = '\0';
  if (f) fclose(f);
  ok(strstr(buf, "<!DOCTYPE html>") == buf, "... an HTML page");
  ok(gilua_timeline("/nonexistent/trace.json", html) == -1 && errno == ENOENT,
     "a missing trace file is ENOENT");
  ok(gilua_trace_start("/nonexistent/dir/t.json") == -1 && errno == ENOENT,
     "an unwritable trace path fails at once");
  unlink(json);
  unlink(html);
  gilua_getstats(&st);
  ok(st.threads >= 3 && st.elapsed > 0, "gilua_getstats: thread records and elapsed time");
}

/* }====================================================== */


/*
** {======================================================
** Closing with live threads, and opening again
** =======================================================
*/

/*
** {======================================================
** Ctrl-C from the host
** =======================================================
*/

static void *interrupter (void *arg) {
  nap(*(double *)arg);
  gilua_setinterrupt();
  return NULL;
}


/* Blocks without the GIL in short sleeps until Ctrl-C is pending (or 5 s
** pass), as blocking code written against gilua.h should. */
static int l_c_block (lua_State *T) {
  double until = now() + 5;
  GILUA_BEGIN_ALLOW_THREADS(T)
    while (now() < until && !gilua_interrupt_pending()) {
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  GILUA_END_ALLOW_THREADS(T)
  gilua_checkinterrupt(T);
  lua_pushliteral(T, "not interrupted");
  return 1;
}


/* Runs 'code' while another thread calls gilua_setinterrupt after 0.2 s;
** returns the seconds it took and whether it ended in KeyboardInterrupt. */
static double interrupted_run (const char *code, int *kbi) {
  pthread_t th;
  double delay = 0.2, t0 = now();
  int st;
  pthread_create(&th, NULL, interrupter, &delay);
  st = luaL_loadstring(L, code);
  if (st == LUA_OK) st = gilua_pcall(L, 0, 0);
  *kbi = 0;
  if (st != LUA_OK) {
    const char *msg = luaL_tolstring(L, -1, NULL);
    *kbi = strncmp(msg, "KeyboardInterrupt", 17) == 0;
    if (!*kbi) diag("%s", msg);
    lua_pop(L, 2);
  }
  pthread_join(th, NULL);
  return now() - t0;
}


static void test_interrupt (void) {
  double dt;
  int kbi;
  ok(!gilua_sigint_on(), "Ctrl-C is the host's to turn on: off after gilua_open");
  gilua_setinterrupt();
  ok(!gilua_interrupt_pending(), "gilua_setinterrupt is ignored while it is off");
  gilua_sigint(1);
  ok(gilua_sigint_on(), "gilua_sigint(1) turns it on");
  dt = interrupted_run("local time = require 'time'\n"
                       "local t0 = time.monotonic()\n"
                       "while time.monotonic() - t0 < 5 do end", &kbi);
  ok(kbi && dt < 3, "gilua_setinterrupt from a host thread stops running Lua "
                    "code with KeyboardInterrupt");
  dt = interrupted_run("require 'time'.sleep(5)", &kbi);
  ok(kbi && dt < 3, "... and a sleep");
  lua_register(L, "c_block", l_c_block);
  dt = interrupted_run("c_block()", &kbi);
  ok(kbi && dt < 3, "... and a C function blocked without the GIL that "
                    "tests gilua_interrupt_pending and calls gilua_checkinterrupt");
  if (!kbi || dt >= 3) diag("took %.2f s", dt);
  ok(!gilua_interrupt_pending(), "the interrupt was taken once");
  ok(dostring(L, "x_after = 1") == LUA_OK, "Lua runs normally afterwards");
  gilua_sigint(0);
  ok(!gilua_sigint_on(), "gilua_sigint(0) turns it off");
}

/* }====================================================== */


static int non_daemon_done;

static int l_mark (lua_State *T) {
  (void)T;
  non_daemon_done = 1;
  return 0;
}

/* Host threads that are in a released region when gilua_close runs. */
static pthread_mutex_t hm = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hc = PTHREAD_COND_INITIALIZER;
static int closed, in_region, detacher_done, acquirer_back;

static void wait_closed (void) {
  pthread_mutex_lock(&hm);
  in_region++;
  pthread_cond_broadcast(&hc);
  while (!closed) pthread_cond_wait(&hc, &hm);
  pthread_mutex_unlock(&hm);
}

static void *detacher (void *arg) {
  lua_State *T = gilua_attach(L);
  (void)arg;
  gilua_release(T);
  wait_closed();
  gilua_detach(T);                     /* lets its state go without the GIL */
  pthread_mutex_lock(&hm);
  detacher_done = 1;
  pthread_mutex_unlock(&hm);
  return NULL;
}

static void *acquirer (void *arg) {
  lua_State *T = gilua_attach(L);
  (void)arg;
  gilua_release(T);
  wait_closed();
  gilua_acquire(T);                    /* parks: the interpreter is gone */
  pthread_mutex_lock(&hm);
  acquirer_back = 1;
  pthread_mutex_unlock(&hm);
  return NULL;
}

static void test_close (void) {
  pthread_t d, a;
  double t0, dt;
  gilua_stats st;
  int i, back;
  lua_pushcfunction(L, l_mark);
  lua_setglobal(L, "mark");
  dostring(L, "local threading = require 'threading'\n"
              "local time = require 'time'\n"
              "threading.Thread{name = 'daemon-spin', daemon = true,\n"
              "  target = function() local n = 0; while true do n = n + 1 end end}:start()\n"
              "threading.Thread{name = 'daemon-sleep', daemon = true,\n"
              "  target = function() while true do time.sleep(0.01) end end}:start()\n"
              "threading.Thread{name = 'non-daemon',\n"
              "  target = function() time.sleep(0.3); mark() end}:start()");
  GILUA_BEGIN_ALLOW_THREADS(L)
    pthread_create(&d, NULL, detacher, NULL);
    pthread_create(&a, NULL, acquirer, NULL);
    pthread_detach(a);                 /* never comes back */
    pthread_mutex_lock(&hm);
    while (in_region < 2) pthread_cond_wait(&hc, &hm);
    pthread_mutex_unlock(&hm);
  GILUA_END_ALLOW_THREADS(L)
  t0 = now();
  gilua_close(L);
  dt = now() - t0;
  diag("gilua_close took %.3f s", dt);
  ok(non_daemon_done, "gilua_close waited for the non-daemon thread");
  ok(dt < 5, "... and returned with daemon threads still running");
  L = NULL;

  pthread_mutex_lock(&hm);
  closed = 1;
  pthread_cond_broadcast(&hc);
  pthread_mutex_unlock(&hm);
  pthread_join(d, NULL);
  ok(detacher_done, "a host thread released at close detaches afterwards");
  nap(0.1);

  /* A new interpreter: the parked threads stay parked. */
  L = gilua_open();
  ok(L != NULL, "a new interpreter opens after gilua_close");
  if (L == NULL) return;
  gilua_resetstats();
  ok(dostring(L, "local s = 0; for i = 1, 5e6 do s = s + i end\n"
                 "x = require('threading').active_count()") == LUA_OK,
     "it runs Lua");
  for (i = 0; i < 5; i++) {            /* room for a parked thread to misbehave */
    GILUA_BEGIN_ALLOW_THREADS(L)
      nap(0.02);
    GILUA_END_ALLOW_THREADS(L)
  }
  gilua_getstats(&st);
  pthread_mutex_lock(&hm);
  back = acquirer_back;
  pthread_mutex_unlock(&hm);
  ok(!back, "a host thread that wanted the GIL after close stays parked");
  ok(st.switches == 0 && st.threads == 1,
     "no thread of the old interpreter takes the GIL of the new one");
  if (st.switches || st.threads != 1)
    diag("switches %lu, thread records %d", st.switches, st.threads);
  ok(getint(L, "x") == 1, "the new interpreter sees only its own thread");
  gilua_close(L);
  L = gilua_open();
  ok(L != NULL, "and again");
  if (L != NULL) gilua_close(L);
}

/* }====================================================== */


/*
** {======================================================
** The GIL's policies
** =======================================================
*/

#define NPOLATT 6

static atomic_int attaching;

static void *policy_attacher (void *arg) {
  int *failures = arg, i;
  for (i = 0; i < 10; i++) {
    lua_State *T = gilua_attach(L);
    if (T == NULL) {
      (*failures)++;
      continue;
    }
    if (dostring(T, "for _ = 1, 200 do\n"
                    "  local _ <close> = shared_lock:acquire()\n"
                    "  local v = total; total = v + 1\n"
                    "end") != LUA_OK)
      (*failures)++;
    GILUA_BEGIN_ALLOW_THREADS(T)
      nap(0.001);  /* a blocking call: io-priority's case */
    GILUA_END_ALLOW_THREADS(T)
    gilua_detach(T);
  }
  atomic_fetch_sub(&attaching, 1);
  return NULL;
}

/* A host thread with no state changes the policy while the others run. */
static void *switcher (void *arg) {
  int *changes = arg, i = 0;
  while (atomic_load(&attaching) > 0) {
    if (gilua_setgilpolicy(gilua_gilpolicyname(i++ % 4)) == 0) (*changes)++;
    nap(0.002);
  }
  return NULL;
}

static void test_policies (void) {
  static const char *const names[] = {"new", "old", "io-priority", "fifo"};
  char msg[256], code[80];
  int i, p, all = 1;
  for (i = 0; i < 4; i++)
    all = all && gilua_gilpolicyname(i) && strcmp(gilua_gilpolicyname(i), names[i]) == 0;
  ok(all && gilua_gilpolicyname(4) == NULL && gilua_gilpolicyname(-1) == NULL,
     "gilua_gilpolicyname lists new, old, io-priority, fifo");
  errno = 0;
  ok(gilua_setgilpolicy("lifo") == -1 && errno == EINVAL,
     "gilua_setgilpolicy(\"lifo\"): -1, EINVAL");
  ok(gilua_setgilpolicy(NULL) == -1, "gilua_setgilpolicy(NULL): -1");
  ok(strcmp(gilua_getgilpolicy(), "new") == 0, "... the policy stays new");
  gilua_setcheckinterval(37);
  ok(gilua_getcheckinterval() == 37, "gilua_setcheckinterval(37) is read back");
  gilua_setcheckinterval(0);
  ok(gilua_getcheckinterval() == 1, "a check interval below 1 counts as 1");
  gilua_setcheckinterval(100);

  for (p = 0; p < 4; p++) {
    pthread_t th[NPOLATT], sw;
    int failures[NPOLATT] = {0}, changes = 0, bad = 0;
    lua_Integer spun;
    snprintf(msg, sizeof msg, "gilua_setgilpolicy(\"%s\") before gilua_open",
             names[p]);
    ok(gilua_setgilpolicy(names[p]) == 0, msg);
    L = gilua_open();
    if (L == NULL) {
      ok(0, "gilua_open");
      return;
    }
    snprintf(code, sizeof code, "assert(require('sys').getgilpolicy() == '%s')",
             names[p]);
    snprintf(msg, sizeof msg, "%s: gilua_open keeps the policy", names[p]);
    ok(dostring(L, code) == LUA_OK, msg);
    dostring(L, "total = 0; spun = 0; spinning = true\n"
                "local threading = require 'threading'\n"
                "shared_lock = threading.Lock()\n"
                "spinner = threading.Thread{target = function()\n"
                "  while spinning do spun = spun + 1 end end}\n"
                "spinner:start()");
    atomic_store(&attaching, NPOLATT);
    GILUA_BEGIN_ALLOW_THREADS(L)
      for (i = 0; i < NPOLATT; i++)
        pthread_create(&th[i], NULL, policy_attacher, &failures[i]);
      pthread_create(&sw, NULL, switcher, &changes);
      for (i = 0; i < NPOLATT; i++) pthread_join(th[i], NULL);
      pthread_join(sw, NULL);
      gilua_setgilpolicy(names[p]);
    GILUA_END_ALLOW_THREADS(L)
    for (i = 0; i < NPOLATT; i++) bad += failures[i];
    dostring(L, "spinning = false; spinner:join()");
    spun = getint(L, "spun");
    snprintf(msg, sizeof msg, "%s: %d host threads x 10 attach, count under a Lock "
             "and block, while the policy changes %d times: total %lld, a Lua "
             "thread ran beside (%lld)", names[p], NPOLATT, changes,
             (long long)getint(L, "total"), (long long)spun);
    ok(bad == 0 && changes > 0 && getint(L, "total") == NPOLATT * 10 * 200 &&
       spun > 0, msg);
    ok(strcmp(gilua_getgilpolicy(), names[p]) == 0, "... and the policy set last holds");
    gilua_close(L);
    L = NULL;
  }
  gilua_setgilpolicy("new");
}

/* }====================================================== */


/*
** {======================================================
** The deterministic scheduler from a host
** =======================================================
*/

static const char *const RACE =
  "local threading = require 'threading'\n"
  "compteur = 0\n"
  "local ts = {}\n"
  "for i = 1, 4 do\n"
  "  ts[i] = threading.Thread{target = function()\n"
  "    for _ = 1, 500 do local v = compteur; compteur = v + 1 end end}\n"
  "  ts[i]:start()\n"
  "end\n"
  "for i = 1, 4 do ts[i]:join() end\n";

/* One opening of the interpreter that runs the race; returns the count. */
static lua_Integer race_once (void) {
  lua_Integer n = -1;
  L = gilua_open();
  if (L == NULL) return -1;
  if (dostring(L, RACE) == LUA_OK) n = getint(L, "compteur");
  gilua_close(L);
  L = NULL;
  return n;
}

static void *sched_attacher (void *arg) {
  lua_State *T = gilua_attach(L);
  (void)arg;
  if (T != NULL) {
    dostring(T, "attached = (attached or 0) + 1");
    gilua_detach(T);
  }
  return NULL;
}

static void test_scheduler (void) {
  unsigned long long seed = 99;
  lua_Integer a, b, c;
  char msg[200];
  errno = 0;
  ok(gilua_setscheduler("chaos", 1) == -1 && errno == EINVAL,
     "gilua_setscheduler(\"chaos\"): -1, EINVAL");
  ok(strcmp(gilua_getscheduler(&seed), "off") == 0 && seed == 0,
     "gilua_getscheduler: off, seed 0");
  ok(gilua_setscheduler("random", 7) == 0, "gilua_setscheduler(\"random\", 7) before gilua_open");
  ok(strcmp(gilua_getscheduler(&seed), "random") == 0 && seed == 7,
     "... gilua_getscheduler reads it back");
  a = race_once();
  b = race_once();
  gilua_setscheduler("random", 8);
  c = race_once();
  snprintf(msg, sizeof msg, "the literal race, seed 7 twice: %lld and %lld "
           "(seed 8: %lld), updates lost", (long long)a, (long long)b, (long long)c);
  ok(a > 0 && a == b && a < 2000, msg);
  L = gilua_open();
  dostring(L, "go = true; t = require('threading').Thread{target = function()\n"
              "  while go do require('time').sleep(0.001) end end}; t:start()");
  errno = 0;
  ok(gilua_setscheduler("random", 1) == -1 && errno == EBUSY,
     "gilua_setscheduler with a thread alive: -1, EBUSY");
  {  /* a host's own thread under the scheduler: runs, determinism is lost */
    pthread_t th;
    GILUA_BEGIN_ALLOW_THREADS(L)
      pthread_create(&th, NULL, sched_attacher, NULL);
      pthread_join(th, NULL);
    GILUA_END_ALLOW_THREADS(L)
    ok(getint(L, "attached") == 1, "a host thread attaches and runs Lua under the scheduler");
  }
  dostring(L, "go = false; t:join()");
  ok(gilua_setscheduler("off", 0) == 0 && strcmp(gilua_getscheduler(NULL), "off") == 0 &&
     strcmp(gilua_getgilpolicy(), "new") == 0, "gilua_setscheduler(\"off\"): the policy is new again");
  gilua_close(L);
  L = NULL;
}

/* }====================================================== */


int main (void) {
  L = gilua_open();
  ok(L != NULL, "gilua_open");
  if (L == NULL) {
    printf("1..%d\n", ntest);
    return 1;
  }
  ok(gilua_attach(L) == NULL, "the main thread cannot attach a second time");
  test_attach();
  test_nested();
  test_errors();
  test_trace();
  test_interrupt();
  test_close();
  test_policies();
  test_scheduler();
  printf("1..%d\n", ntest);
  return nfail == 0 ? 0 : 1;
}
