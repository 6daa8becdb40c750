/*
** gilua_state.c: opening and closing interpreters; the public API of
** gilua.h for them, and for running code.
**
** Each interpreter has its own GIL (a gil_t, gil/gil.h), as in CPython
** since 3.12; vm/gilua_interp.c keeps the list of them and moves threads
** between them. Each OS thread that runs Lua in an interpreter owns a
** gilua_tstate there, found through the GIL's thread-local record
** (gil_self), which is its first member; its Lua side is a thread made
** with lua_newthread, so globals and tables are shared between the threads
** of one interpreter exactly as Python threads share objects, and not at
** all between interpreters.
*/
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "gilua_vm.h"


/* The most sub-interpreters the main one closes at its end. */
#define MAXLEFT 256


static int load_runtime (lua_State *L) {
  gilua_runtime(L);
  return 0;
}


static void close_state (lua_State *L) {
  void *pool;
  lua_Alloc alloc = lua_getallocf(L, &pool);
  lua_close(L);
  gilua_pool_free(alloc, pool);
}


/* Gives up an interpreter whose opening failed, and the state L made for
** it when 'ours'. */
static void abandon (gilua_tstate *ts, lua_State *L, int ours) {
  gilua_interp *I = ts->interp;
  gilua_interp_closing(I, ts);
  gilua_gil_closing(I);
  gil_finalize(&ts->gt);
  ts->current = NULL;
  if (ours) close_state(L);
  gil_exit(&ts->gt);
  gil_close(&I->gil);
  gilua_interp_free(I);
  gilua_interp_unopen(ts);
}


/*
** Opens L as the main state of I, the calling thread ('ts') as its main
** thread, holding its GIL. The main state's stack may be in use by the
** main thread while it waits, GIL released, in a C function; so thread
** states are made on 'spawner', a thread used for nothing else.
*/
static int open_state (gilua_tstate *ts, lua_State *L,
                       const luaL_Reg *cmodules) {
  gilua_interp *I = ts->interp;
  ts->L = ts->current = L;
  I->L = L;
  I->cmodules = cmodules;
  if (I->id == 0) gil_signal_init();
  gil_open(&I->gil, &ts->gt);
  gilua_gil_opened(I);
  gilua_hook_thread(L);
  /* Everything made from here on stays: no collection while it is made
  ** (it would walk a heap that is all alive, several times over). */
  lua_gc(L, LUA_GCSTOP);
  I->spawner = lua_newthread(L);
  luaL_ref(L, LUA_REGISTRYINDEX);
  luaL_openlibs(L);
  gilua_hook_openlibs(L);
  gilua_preload(L, cmodules);
  gilua_opencoroutine(L);
  gilua_openio(L);
  gilua_openos(L);
  if (!I->capi) gilua_lazyruntime(L);   /* made from Lua: when needed */
  else {
    lua_pushcfunction(L, load_runtime);
    if (gilua_pcall(L, 0, 0) != LUA_OK) {
      gilua_report(L);
      return -1;
    }
  }
  lua_gc(L, LUA_GCRESTART);
  gilua_interp_opened(I);
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
** Called with the interpreter's GIL held, so its own fields will do.
*/
static void warning (void *ud, const char *msg, int tocont) {
  gilua_interp *I = ud;
  if (!I->warn_midline && *msg == '@') {  /* a control message */
    if (strcmp(msg, "@on") == 0) I->warn_on = 1;
    else if (strcmp(msg, "@off") == 0) I->warn_on = 0;
    return;
  }
  if (I->warn_on) {
    if (!I->warn_midline) fputs("Lua warning: ", stderr);
    fputs(msg, stderr);
    if (!tocont) {
      fputc('\n', stderr);
      fflush(stderr);
    }
  }
  I->warn_midline = tocont;
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


static lua_State *newstate (gilua_interp *I) {
  gilua_pool *pool;
  lua_Alloc alloc = gilua_allocator(&pool);
  lua_State *L = lua_newstate(alloc, pool);
  if (L == NULL) {
    gilua_pool_free(alloc, pool);
    return NULL;
  }
  lua_atpanic(L, panic);
  lua_setwarnf(L, warning, I);
  return L;
}


/* A new interpreter on L (NULL: made here), opened by the calling thread
** as its main thread. */
static gilua_tstate *open_interp (lua_State *L, const luaL_Reg *cmodules,
                                  int capi) {
  gilua_interp *I = gilua_interp_slot();
  gilua_tstate *ts;
  int ours = (L == NULL);
  if (I == NULL) return NULL;
  I->capi = capi;
  I->whence = (I->id == 0) ? "runtime init" : capi ? "C-API"
                                     : "_interpreters module";
  if ((ts = gilua_interp_opener(I)) == NULL) {
    gilua_interp_free(I);
    return NULL;
  }
  if (ours && (L = newstate(I)) == NULL) {
    ts->L = NULL;
    gil_open(&I->gil, &ts->gt);
    abandon(ts, NULL, 0);
    return NULL;
  }
  if (open_state(ts, L, cmodules) != 0) {
    abandon(ts, L, ours);
    return NULL;
  }
  return ts;
}


int gilua_vm_openlibs (lua_State *L, const luaL_Reg *cmodules) {
  if (L == NULL) return -1;
  return open_interp(L, cmodules, 1) ? 0 : -1;
}


lua_State *gilua_vm_open (const luaL_Reg *cmodules) {
  gilua_tstate *ts = open_interp(NULL, cmodules, 1);
  return ts ? ts->L : NULL;
}


/* What a new interpreter gets from its maker: where to find modules
** (package.path and cpath, as multiprocessing's spawn passes them on), and
** its GIL's settings (below). */
static char *paths_of (lua_State *L) {
  const char *p, *c;
  char *both;
  size_t np, nc;
  lua_getglobal(L, "package");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return NULL;
  }
  lua_getfield(L, -1, "path");
  lua_getfield(L, -2, "cpath");
  p = lua_tolstring(L, -2, &np);
  c = lua_tolstring(L, -1, &nc);
  both = (p && c) ? malloc(np + nc + 2) : NULL;
  if (both != NULL) {
    memcpy(both, p, np + 1);
    memcpy(both + np + 1, c, nc + 1);
  }
  lua_pop(L, 3);
  return both;
}


static void set_paths (lua_State *L, const char *both) {
  lua_getglobal(L, "package");
  lua_pushstring(L, both);
  lua_setfield(L, -2, "path");
  lua_pushstring(L, both + strlen(both) + 1);
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
}


int gilua_interp_create (lua_State *L, lua_Integer *id) {
  char *paths = paths_of(L);
  gil_t *maker = gilua_gil(), *g;
  gilua_tstate *ts = open_interp(NULL, gilua_ts()->interp->cmodules, 0);
  if (ts == NULL) {
    free(paths);
    return GILUA_ENOMEM;
  }
  if (paths != NULL) set_paths(ts->L, paths);
  free(paths);
  /* its GIL starts as its maker's is set now: policy and intervals */
  g = &ts->interp->gil;
  gil_setinterval(g, gil_getinterval(maker));
  gil_setcheckinterval(g, gil_checkinterval(maker));
  if (gil_getpolicy(g) != gil_getpolicy(maker))
    gil_setpolicy(g, gil_getpolicy(maker));
  *id = ts->interp->id;
  gilua_interp_keep(ts);
  return 0;
}


/*
** Closes the interpreter of 'ts', the calling thread's state there,
** holding its GIL; then the thread is back where it was before. Python's
** exit rule first: wait for the non-daemon threads. The main interpreter
** then closes the interpreters made from Lua that are still open, as
** CPython ends its sub-interpreters at exit.
*/
static void finish (gilua_tstate *ts) {
  gilua_interp *I = ts->interp;
  lua_State *L = I->L;
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "threading");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "_shutdown");
    if (lua_isfunction(L, -1)) {
      if (gilua_pcall(L, 0, 0) != LUA_OK) gilua_report(L);
    } else lua_pop(L, 1);
  }
  lua_pop(L, 2);
  if (I->id == 0) {
    lua_Integer left[MAXLEFT];
    int n = gilua_interp_leftovers(left, MAXLEFT), i;
    for (i = 0; i < n && i < MAXLEFT; i++) gilua_interp_close(L, left[i]);
  }
  /* Daemon threads park for good the next time they want the GIL. From
  ** now on nobody posts drop requests, and none may reach a state that
  ** lua_close is freeing: the signal handler arms no hook without a
  ** 'current' coroutine. */
  gilua_interp_closing(I, ts);
  gilua_gil_closing(I);
  gil_finalize(&ts->gt);
  ts->current = NULL;
  close_state(L);
  gil_exit(&ts->gt);
  gil_close(&I->gil);
  gilua_interp_free(I);
  gilua_interp_unopen(ts);
}


void gilua_close (lua_State *L) {
  gilua_tstate *ts = gilua_ts();
  if (L == NULL || !gilua_interp_isopen(L)) return;  /* nothing of ours */
  if (ts == NULL || ts->L != L) {
    fprintf(stderr, "gilua: fatal error in gilua_close: called by a thread "
            "other than the one that opened the interpreter (which holds "
            "the GIL)\n");
    fflush(stderr);
    abort();
  }
  needgil(L, "gilua_close");
  finish(ts);
}


int gilua_interp_close (lua_State *L, lua_Integer id) {
  int err;
  gilua_tstate *ts = gilua_interp_enter(id, 1, &err);
  (void)L;
  if (ts == NULL) return err;
  finish(ts);
  return 0;
}


lua_State *gilua_attach (lua_State *L) {
  gilua_tstate *ts = L ? gilua_tstate_new(L) : NULL;
  return ts ? ts->L : NULL;
}


/* Only a state of gilua_attach: not an interpreter's main thread, nor a
** visitor (which leaves with gilua_interp_leave). */
void gilua_detach (lua_State *T) {
  gilua_tstate *ts = gilua_ts();
  (void)T;
  if (ts != NULL && !ts->visitor && ts->L != ts->interp->L)
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
