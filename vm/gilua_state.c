/*
** gilua_state.c: the interpreter and its thread states; the public API of
** gilua.h.
**
** One interpreter per process, with one GIL (a gil_t, gil/gil.h), as in
** CPython before 3.12. Each OS thread that runs Lua owns a gilua_tstate,
** found through the GIL's thread-local record (gil_self), which is its
** first member; its Lua side is a thread made with lua_newthread, so
** globals and tables are shared exactly as Python threads share objects.
*/
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include <lualib.h>

#include "gilua_vm.h"


static lua_State *main_L;      /* the interpreter, NULL when none is open */
static lua_State *spawner;     /* makes new thread states, see below */
static int spawner_ref = LUA_NOREF;
static unsigned long main_ident;


lua_State *gilua_mainstate (void) {
  return main_L;
}


unsigned long gilua_mainident (void) {
  return main_ident;
}


static void tstate_init (gilua_tstate *ts) {
  gil_thread *t = &ts->gt;
  memset(ts, 0, sizeof *ts);
  gil_thread_init(t, gilua_gil());
  ts->ref = LUA_NOREF;
  t->thread = pthread_self();
  t->ident = (unsigned long)t->thread;
  t->native_id = (pid_t)syscall(SYS_gettid);
  snprintf(t->name, sizeof t->name, "Thread-%d", (int)t->native_id);
  gil_setself(t);
}


/*
** A new thread state for the calling OS thread. Its Lua thread is made on
** 'spawner', a state used for nothing else: the main state's stack may be
** in use by the main thread, blocked in a C function without the GIL.
*/
gilua_tstate *gilua_tstate_new (lua_State *main) {
  gilua_tstate *ts = malloc(sizeof *ts);
  (void)main;
  if (ts == NULL) return NULL;
  tstate_init(ts);
  gil_register(&ts->gt);
  gil_acquire(&ts->gt);
  ts->L = lua_newthread(spawner);
  ts->ref = luaL_ref(spawner, LUA_REGISTRYINDEX);
  ts->current = ts->L;
  gilua_hook_thread(ts->L);
  return ts;
}


/* Forget the calling thread's state and release the GIL (unless an
** enclosing gilua_release let it go already: then the state is dropped
** without touching Lua). */
void gilua_tstate_free (gilua_tstate *ts) {
  if (ts->released == 0 && main_L != NULL)
    luaL_unref(spawner, LUA_REGISTRYINDEX, ts->ref);
  ts->current = NULL;
  gil_exit(&ts->gt);
  gil_setself(NULL);
  free(ts);
}


/* fork() in a thread that holds the GIL: the child's only thread keeps it. */
static void after_fork_child (void) {
  if (main_L != NULL && gil_self() != NULL) gil_after_fork(gil_self());
}


static int load_runtime (lua_State *L) {
  /* gilua.class gets the table where named classes are registered. */
  gilua_loadembedded(L, "gilua.class");
  lua_getfield(L, LUA_REGISTRYINDEX, GILUA_CLASSES_KEY);
  lua_call(L, 1, 1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "gilua.class");
  lua_pop(L, 2);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "gilua.exceptions");
  lua_call(L, 1, 0);
  return 0;
}


int gilua_vm_openlibs (lua_State *L, const luaL_Reg *cmodules) {
  static int atfork_set;
  gilua_tstate *ts;
  if (L == NULL || main_L != NULL) return -1;
  ts = malloc(sizeof *ts);
  if (ts == NULL) return -1;
  tstate_init(ts);
  strcpy(ts->gt.name, "MainThread");
  ts->L = ts->current = L;
  main_L = L;
  main_ident = ts->gt.ident;
  gil_signal_init(&ts->gt);
  gil_open(gilua_gil(), &ts->gt);
  if (!atfork_set) {
    pthread_atfork(NULL, NULL, after_fork_child);
    atfork_set = 1;
  }
  gilua_hook_thread(L);
  spawner = lua_newthread(L);
  spawner_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  luaL_openlibs(L);
  gilua_hook_openlibs(L);
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, GILUA_CLASSES_KEY);
  gilua_preload(L, cmodules);
  gilua_opencoroutine(L);
  gilua_openio(L);
  gilua_openos(L);
  lua_pushcfunction(L, load_runtime);
  if (gilua_pcall(L, 0, 0) != LUA_OK) {
    gilua_report(L);
    return -1;
  }
  return 0;
}


/* An error outside any protected call: say it before Lua aborts. */
static int panic (lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "gilua: unprotected error: %s\n",
          msg ? msg : "(error object is not a string)");
  fflush(stderr);
  return 0;
}


/*
** warn() of Lua 5.4: off until "@on"; each warning is its pieces, the
** last with tocont == 0, written as one line "Lua warning: ..." on stderr.
** Called with the GIL held, so plain statics will do.
*/
static int warn_on, warn_midline;

static void warning (void *ud, const char *msg, int tocont) {
  (void)ud;
  if (!warn_midline && *msg == '@') {  /* a control message */
    if (strcmp(msg, "@on") == 0) warn_on = 1;
    else if (strcmp(msg, "@off") == 0) warn_on = 0;
    return;
  }
  if (warn_on) {
    if (!warn_midline) fputs("Lua warning: ", stderr);
    fputs(msg, stderr);
    if (!tocont) {
      fputc('\n', stderr);
      fflush(stderr);
    }
  }
  warn_midline = tocont;
}


/*
** A function that needs the GIL, called by a thread without it or with no
** state: nothing it would do to Lua is safe any more, so it stops the
** process with a message, as CPython's Py_FatalError does, rather than
** corrupt memory (gilua.h documents it).
*/
static void needgil (lua_State *L, const char *fn) {
  const char *why;
  if (L == NULL) why = "the state is NULL";
  else if (!gilua_hasgil()) why = "the calling thread does not hold the GIL";
  else return;
  fprintf(stderr, "gilua: fatal error in %s: %s\n", fn, why);
  fflush(stderr);
  abort();
}


lua_State *gilua_vm_open (const luaL_Reg *cmodules) {
  gilua_pool *pool;
  lua_Alloc alloc = gilua_allocator(&pool);
  lua_State *L = lua_newstate(alloc, pool);
  if (L == NULL) {
    gilua_pool_free(alloc, pool);
    return NULL;
  }
  lua_atpanic(L, panic);
  lua_setwarnf(L, warning, NULL);
  if (gilua_vm_openlibs(L, cmodules) != 0) {
    lua_close(L);
    gilua_pool_free(alloc, pool);
    return NULL;
  }
  return L;
}


void gilua_close (lua_State *L) {
  gilua_tstate *ts = gilua_ts();
  if (L == NULL || L != main_L) return;  /* nothing (of ours) to close */
  if (ts == NULL || ts->L != L) {
    fprintf(stderr, "gilua: fatal error in gilua_close: called by a thread "
            "other than the one that opened the interpreter (which holds "
            "the GIL)\n");
    fflush(stderr);
    abort();
  }
  needgil(L, "gilua_close");
  /* Python's exit rule: wait for the non-daemon threads. */
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "threading");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "_shutdown");
    if (lua_isfunction(L, -1)) {
      if (gilua_pcall(L, 0, 0) != LUA_OK) gilua_report(L);
    } else lua_pop(L, 1);
  }
  lua_pop(L, 2);
  /* Daemon threads park for good the next time they want the GIL. From
  ** now on nobody posts drop requests, and none may reach a state that
  ** lua_close is freeing: the signal handler arms no hook without a
  ** 'current' coroutine. */
  gil_finalize(&ts->gt);
  ts->current = NULL;
  {
    void *pool;
    lua_Alloc alloc = lua_getallocf(L, &pool);
    lua_close(L);
    gilua_pool_free(alloc, pool);
  }
  main_L = NULL;
  spawner = NULL;
  gil_exit(&ts->gt);
  gil_close(gilua_gil());
  gil_setself(NULL);
  free(ts);
}


lua_State *gilua_attach (lua_State *L) {
  gilua_tstate *ts;
  if (L == NULL || main_L == NULL || gil_self() != NULL) return NULL;
  ts = gilua_tstate_new(L);
  return ts ? ts->L : NULL;
}


/* The main thread's state is gilua_close's to end: detaching it would
** leave the interpreter without its owner. */
void gilua_detach (lua_State *T) {
  gilua_tstate *ts = gilua_ts();
  (void)T;
  if (ts != NULL && (main_L == NULL || ts->L != main_L))
    gilua_tstate_free(ts);
}


/*
** Errors keep their traceback: an exception object took one when it was
** made; a string gets one here, as lua.c does.
*/
static int msghandler (lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (lua_istable(L, 1)) return 1;
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}


int gilua_pcall (lua_State *L, int nargs, int nresults) {
  int status, base;
  needgil(L, "gilua_pcall");
  base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  status = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  return status;
}


void gilua_report (lua_State *L) {
  const char *msg;
  needgil(L, "gilua_report");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "traceback");
    msg = luaL_tolstring(L, -2, NULL);
    fprintf(stderr, "%s\n", msg);
    if (lua_isstring(L, -2)) fprintf(stderr, "%s\n", lua_tostring(L, -2));
    lua_pop(L, 2);
  } else {
    msg = luaL_tolstring(L, -1, NULL);
    fprintf(stderr, "%s\n", msg);
    lua_pop(L, 1);
  }
  fflush(stderr);
  lua_pop(L, 1);
}


int gilua_dofile (lua_State *L, const char *path) {
  int status;
  needgil(L, "gilua_dofile");
  lua_pushliteral(L, "__main__");
  lua_setglobal(L, "__name__");
  status = luaL_loadfile(L, path);
  if (status == LUA_OK) status = gilua_pcall(L, 0, 0);
  if (status != LUA_OK) gilua_report(L);
  return status;
}
