/*
** embed_hostile.c: the embedding API called the wrong way (TAP output).
**
** Every misuse has the result gilua.h documents for it:
** - no-ops: gilua_release/gilua_acquire/gilua_detach/gilua_setthreadname
**   from a thread without a state, before gilua_open and after
**   gilua_close; a second gilua_detach; gilua_acquire without
**   gilua_release; gilua_detach from the main thread; gilua_close(NULL),
**   a second gilua_close, a gilua_close of a state that is not the open
**   interpreter's;
** - error returns: gilua_attach before gilua_open, after gilua_close, with
**   NULL, or twice from one thread (NULL); gilua_openlibs(NULL) (-1);
** - a fatal error (a message naming the function on stderr, then abort(),
**   as CPython's Py_FatalError): a function that needs the GIL called by a
**   thread without it (gilua_pcall, gilua_dofile, gilua_report, gilua_close)
**   or given a NULL state. Each runs in a fresh process (this program run
**   again with the case's name), whose end and stderr the test reads.
*/
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

#include "gilua.h"
#include "tap.h"

static lua_State *L;

static void run_thread (void *(*fn)(void *), void *arg) {
  pthread_t th;
  if (pthread_create(&th, NULL, fn, arg) != 0) abort();
  pthread_join(th, NULL);
}


/*
** {======================================================
** Calls from a thread that has no state
** =======================================================
*/

typedef struct res { int r[8]; } res;

static void *stateless (void *arg) {
  res *o = arg;
  gilua_release(NULL);
  gilua_acquire(NULL);
  gilua_release(L);            /* a state not its own: still the caller's */
  gilua_acquire(L);
  gilua_detach(NULL);
  gilua_detach(L);
  gilua_setthreadname("ghost");
  gilua_setthreadname(NULL);
  o->r[0] = gilua_hasgil();
  o->r[1] = gilua_interrupt_pending();
  return NULL;
}

static int stats_have (const char *name) {
  gilua_threadstats st[64];
  int i, n = gilua_getthreadstats(st, 64);
  for (i = 0; i < n && i < 64; i++)
    if (strcmp(st[i].name, name) == 0) return 1;
  return 0;
}

static void test_stateless (const char *when) {
  res o = {{-1, -1}};
  char name[128];
  run_thread(stateless, &o);
  snprintf(name, sizeof name, "%s: release/acquire/detach/setthreadname "
           "from a thread without a state are no-ops; hasgil is 0", when);
  ok(o.r[0] == 0 && o.r[1] == 0, name);
}


/*
** {======================================================
** Attach and detach out of order
** =======================================================
*/

static void *attach_before (void *arg) {
  res *o = arg;
  o->r[0] = gilua_attach(L) == NULL;
  o->r[1] = gilua_attach(NULL) == NULL;
  o->r[2] = gilua_hasgil() == 0;
  return NULL;
}

static void *attach_twice (void *arg) {
  res *o = arg;
  lua_State *T = gilua_attach(L), *T2;
  o->r[0] = T != NULL && gilua_hasgil();
  T2 = gilua_attach(L);
  gilua_close(T);              /* not the interpreter's main state: no-op */
  o->r[1] = T2 == NULL && gilua_hasgil();
  o->r[2] = dostring(T, "hostile = (hostile or 0) + 1") == LUA_OK;
  gilua_detach(T);
  o->r[3] = !gilua_hasgil();
  gilua_detach(T);             /* twice */
  gilua_detach(NULL);
  o->r[4] = !gilua_hasgil();
  T = gilua_attach(L);         /* attaches again after detaching */
  o->r[5] = T != NULL && dostring(T, "hostile = hostile + 1") == LUA_OK;
  gilua_detach(T);
  return NULL;
}

static void *unbalanced (void *arg) {
  res *o = arg;
  lua_State *T = gilua_attach(L);
  if (T == NULL) return NULL;
  gilua_acquire(T);            /* acquire without release: no-op */
  gilua_acquire(T);
  o->r[0] = gilua_hasgil() && dostring(T, "hostile = hostile + 1") == LUA_OK;
  gilua_release(T);            /* release twice, acquire once: still released */
  gilua_release(T);
  gilua_acquire(T);
  o->r[1] = !gilua_hasgil();
  gilua_acquire(T);
  o->r[2] = gilua_hasgil() && dostring(T, "hostile = hostile + 1") == LUA_OK;
  gilua_acquire(T);            /* one too many again */
  o->r[3] = gilua_hasgil();
  gilua_release(T);            /* released, never taken back: detach anyway */
  gilua_detach(T);
  o->r[4] = !gilua_hasgil();
  return NULL;
}

/* The main thread may go on running Lua while other threads misbehave. */
static int lua_alive (void) {
  return dostring(L, "alive = (alive or 0) + 1") == LUA_OK;
}


/*
** {======================================================
** Fatal errors, each in a fresh process
** =======================================================
*/

static void *pcall_nogil (void *arg) {
  (void)arg;
  gilua_pcall(L, 0, 0);
  return NULL;
}

static void *dofile_nogil (void *arg) {
  (void)arg;
  gilua_dofile(L, "/dev/null");
  return NULL;
}

static void *report_nogil (void *arg) {
  (void)arg;
  gilua_report(L);
  return NULL;
}

static void *close_attached (void *arg) {
  lua_State *T = gilua_attach(L);
  (void)arg;
  (void)T;
  gilua_close(L);              /* not the thread that opened L */
  return NULL;
}

/* Runs one fatal case in this (fresh) process: never returns normally. */
static int fatal_case (const char *name) {
  L = gilua_open();
  if (L == NULL) return 3;
  lua_pushliteral(L, "an error");
  if (strcmp(name, "pcall-thread") == 0) {
    gilua_release(L);
    run_thread(pcall_nogil, NULL);
  } else if (strcmp(name, "pcall-released") == 0) {
    gilua_release(L);
    gilua_pcall(L, 0, 0);
  } else if (strcmp(name, "pcall-null") == 0) {
    gilua_pcall(NULL, 0, 0);
  } else if (strcmp(name, "dofile-thread") == 0) {
    gilua_release(L);
    run_thread(dofile_nogil, NULL);
  } else if (strcmp(name, "report-thread") == 0) {
    gilua_release(L);
    run_thread(report_nogil, NULL);
  } else if (strcmp(name, "close-attached") == 0) {
    gilua_release(L);
    run_thread(close_attached, NULL);
  } else if (strcmp(name, "close-released") == 0) {
    gilua_release(L);
    gilua_close(L);
  }
  return 0;                    /* the misuse went through unnoticed */
}

/* Runs this program on one fatal case; says whether it died of SIGABRT
** with a message that names 'fn' and the GIL (or NULL). */
static void expect_fatal (const char *self, const char *name, const char *fn,
                          const char *what) {
  int fds[2], status;
  char out[2048], title[256];
  size_t n = 0;
  ssize_t r;
  pid_t pid;
  if (pipe(fds) != 0) abort();
  fflush(stdout);
  pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    execl(self, self, name, (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  while (n < sizeof out - 1 && (r = read(fds[0], out + n, sizeof out - 1 - n)) != 0) {
    if (r < 0) { if (errno == EINTR) continue; break; }
    n += (size_t)r;
  }
  out[n] = '\0';
  close(fds[0]);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  snprintf(title, sizeof title, "%s: a fatal error naming %s (%s)", name, fn, what);
  ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT &&
     strstr(out, fn) != NULL && strstr(out, what) != NULL, title);
  if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT))
    fprintf(stderr, "# status %d (%s)\n", status,
            WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "exited");
  if (strstr(out, fn) == NULL) fprintf(stderr, "# stderr: %.300s\n", out);
}


int main (int argc, char **argv) {
  res o;
  lua_State *L0;
  if (argc > 1) return fatal_case(argv[1]);

  /* Before any interpreter. */
  L = NULL;
  test_stateless("before gilua_open");
  memset(&o, 0, sizeof o);
  run_thread(attach_before, &o);
  ok(o.r[0] && o.r[1] && o.r[2], "gilua_attach before gilua_open returns NULL");
  gilua_release(NULL);
  gilua_acquire(NULL);
  gilua_detach(NULL);
  gilua_close(NULL);
  ok(gilua_hasgil() == 0, "before gilua_open: release/acquire/detach/close "
     "are no-ops, hasgil is 0");
  ok(gilua_openlibs(NULL) == -1, "gilua_openlibs(NULL) returns -1");

  L = gilua_open();
  ok(L != NULL && gilua_hasgil(), "gilua_open");
  if (L == NULL) { printf("1..%d\n", ntest); return 1; }
  {  /* several interpreters: tests/c/embed_interp.c */
    lua_State *L2 = gilua_open();
    ok(L2 != NULL && L2 != L, "a second gilua_open opens a second interpreter");
    if (L2 != NULL) gilua_close(L2);
  }
  L0 = luaL_newstate();
  ok(gilua_openlibs(L0) == 0, "gilua_openlibs while one is open opens another one");
  gilua_close(L0);
  ok(gilua_hasgil(), "closing them puts the main thread back in the first one");

  /* Open, misused by other threads. */
  gilua_release(L);
  test_stateless("while open");
  ok(!stats_have("ghost"), "gilua_setthreadname from a thread without a "
     "state names nobody");
  memset(&o, 0, sizeof o);
  run_thread(attach_twice, &o);
  ok(o.r[0], "gilua_attach from a new thread takes the GIL");
  ok(o.r[1], "a second gilua_attach from the same thread returns NULL and "
     "keeps the first state");
  ok(o.r[2] && o.r[3], "gilua_detach releases the GIL");
  ok(o.r[4], "a second gilua_detach (and gilua_detach(NULL)) is a no-op");
  ok(o.r[5], "the thread attaches again after detaching");
  memset(&o, 0, sizeof o);
  run_thread(unbalanced, &o);
  ok(o.r[0], "gilua_acquire without gilua_release is a no-op");
  ok(o.r[1], "releases nest: two releases, one acquire, still released");
  ok(o.r[2] && o.r[3], "the matching acquire takes the GIL back; one more "
     "is a no-op");
  ok(o.r[4], "gilua_detach while released");
  gilua_acquire(L);
  ok(lua_alive(), "the main thread runs Lua after all that");
  lua_getglobal(L, "hostile");
  ok(lua_tointeger(L, -1) == 4, "every Lua call of the misbehaving threads ran once");
  lua_pop(L, 1);

  /* The main thread's own misuses. */
  gilua_detach(L);
  gilua_detach(NULL);
  ok(gilua_hasgil() && lua_alive(), "gilua_detach from the main thread is a "
     "no-op (its state is gilua_close's to end)");
  gilua_acquire(NULL);
  ok(gilua_hasgil() && lua_alive(), "gilua_acquire without release on the "
     "main thread is a no-op");
  gilua_release(NULL);
  ok(!gilua_hasgil(), "gilua_release(NULL) releases the calling thread's GIL");
  gilua_acquire(NULL);
  ok(gilua_hasgil() && lua_alive(), "gilua_acquire(NULL) takes it back");
  gilua_close(NULL);
  ok(gilua_hasgil() && lua_alive(), "gilua_close(NULL) is a no-op");
  L0 = luaL_newstate();
  gilua_close(L0);
  ok(gilua_hasgil() && lua_alive(), "gilua_close of a state that is not the "
     "interpreter's is a no-op");
  lua_close(L0);

  /* Closed. */
  gilua_close(L);
  ok(!gilua_hasgil(), "gilua_close");
  gilua_close(L);
  gilua_close(NULL);
  ok(!gilua_hasgil(), "a second gilua_close is a no-op");
  test_stateless("after gilua_close");
  memset(&o, 0, sizeof o);
  run_thread(attach_before, &o);
  ok(o.r[0] && o.r[1] && o.r[2], "gilua_attach after gilua_close returns NULL");
  gilua_release(L);
  gilua_acquire(L);
  gilua_detach(L);
  ok(!gilua_hasgil(), "after gilua_close, the main thread's release/acquire/"
     "detach are no-ops");

  /* And again. */
  L = gilua_open();
  ok(L != NULL && lua_alive(), "a new interpreter opens and runs Lua");
  memset(&o, 0, sizeof o);
  gilua_release(L);
  run_thread(attach_twice, &o);
  gilua_acquire(L);
  ok(o.r[0] && o.r[5], "threads attach to it");
  gilua_close(L);

  /* Fatal errors. */
  expect_fatal(argv[0], "pcall-thread", "gilua_pcall", "GIL");
  expect_fatal(argv[0], "pcall-released", "gilua_pcall", "GIL");
  expect_fatal(argv[0], "pcall-null", "gilua_pcall", "NULL");
  expect_fatal(argv[0], "dofile-thread", "gilua_dofile", "GIL");
  expect_fatal(argv[0], "report-thread", "gilua_report", "GIL");
  expect_fatal(argv[0], "close-attached", "gilua_close", "GIL");
  expect_fatal(argv[0], "close-released", "gilua_close", "GIL");

  printf("1..%d\n", ntest);
  return nfail != 0;
}
