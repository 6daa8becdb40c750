/*
** gilua_sched.c: the deterministic scheduler (gil/gil_sched.c) as the
** interpreter sees it: its switch (gilua_setscheduler), the program's
** clock, the waits it knows, and the report of a deadlock.
**
** Under the scheduler, every wait of one thread for another goes through
** gilua_sched_wait instead of a condition variable without the GIL
** (gilua_waitq, Thread.start and join, time.sleep): the thread stays
** known as BLOCKED on a key, and the holder that changes the state waited
** for makes it READY (gilua_sched_wake) at a point of the program, not
** when the OS wakes it. Everything else that releases the GIL is a call
** outside, which gil_sched.c waits a grace for.
*/
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gilua_vm.h"


static void ondeadlock (gil_t *g);


int gilua_setscheduler (const char *mode, unsigned long long seed) {
  gil_t *g = gilua_gil();
  int err;
  if (mode != NULL && strcmp(mode, "off") == 0) {
    gil_sched_stop(g);
    return 0;
  }
  if (mode == NULL || strcmp(mode, "random") != 0) {
    errno = EINVAL;
    return -1;
  }
  gil_sched_ondeadlock(ondeadlock);
  if ((err = gil_sched_start(g, seed)) != 0) {
    errno = err;
    return -1;
  }
  return 0;
}


const char *gilua_getscheduler (unsigned long long *seed) {
  unsigned long long s = 0;
  int on = gil_sched_seed(gilua_gil(), &s);
  if (seed) *seed = on ? s : 0;
  return on ? "random" : "off";
}


double gilua_clock (void) {
  gilua_tstate *ts = gilua_ts();
  if (ts != NULL && gil_sched_on(ts->gt.gil)) return gil_sched_now(ts->gt.gil);
  return gilua_monotonic();
}


double gilua_until (double timeout) {
  return timeout < 0 ? GILUA_FOREVER : gilua_clock() + timeout;
}


void gilua_sched_note (unsigned long owner, const char *role,
                       const char *fmt, ...) {
  gilua_tstate *ts = gilua_ts();
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ts->gt.swhat, sizeof ts->gt.swhat, fmt, ap);
  va_end(ap);
  ts->gt.sowner = owner;
  ts->gt.srole = role;
}


int gilua_sched_wait (lua_State *L, const void *key, double until) {
  gilua_tstate *ts = gilua_ts();
  int intime = gil_block(&ts->gt, key, until);
  if (gilua_hook_wanted(ts)) gilua_hook_sync(ts);
  gilua_checkinterrupt(L);
  return intime;
}


void gilua_sched_point (void) {
  gilua_tstate *ts = gilua_ts();
  if (gil_sched_point(&ts->gt) && gilua_hook_wanted(ts)) gilua_hook_sync(ts);
}


void gilua_sched_elapse (double secs) {
  gilua_tstate *ts = gilua_ts();
  if (ts != NULL && gil_sched_on(ts->gt.gil)) gil_sched_pass(ts->gt.gil, secs);
}


void gilua_sched_wake (const void *key, int all) {
  gilua_tstate *ts = gilua_ts();
  if (ts != NULL && gil_sched_on(ts->gt.gil))
    gil_sched_wake(ts->gt.gil, key, all);
}


/*
** {======================================================
** The deadlock report
** =======================================================
*/

static const char *nameof (gil_t *g, unsigned long ident) {
  gil_thread *t;
  for (t = g->threads; t; t = t->next)
    if (t->ident == ident) return t->name[0] ? t->name : "a thread";
  return "a thread gone";
}


/* A traceback read straight off the stopped thread's coroutine: nothing
** is pushed anywhere, no memory is taken. */
static void traceback (lua_State *co) {
  lua_Debug ar;
  int level;
  for (level = 0; lua_getstack(co, level, &ar); level++) {
    if (!lua_getinfo(co, "Sln", &ar)) break;
    if (ar.currentline > 0)
      fprintf(stderr, "        %s:%d: ", ar.short_src, ar.currentline);
    else
      fprintf(stderr, "        %s: ", ar.short_src);
    if (ar.name) fprintf(stderr, "in %s '%s'\n", ar.namewhat, ar.name);
    else if (*ar.what == 'm') fputs("in main chunk\n", stderr);
    else if (*ar.what == 'C') fputs("in a C function\n", stderr);
    else fprintf(stderr, "in function <%s:%d>\n", ar.short_src, ar.linedefined);
  }
}


/*
** What a student sees of a wait: the object the program called a method of
** (a Lock, an Event, a Condition, a Queue), by the local or upvalue that
** holds it there. The frame is the innermost one that is not gilua's own
** Lua code; the object is the first argument of the call it made. The
** thread is stopped for good (the process exits after the report), so its
** stack may serve: what is pushed on it is popped at once.
*/
static int ours (const lua_Debug *ar) {
  return strncmp(ar->source, "@stdlib/", 8) == 0 ||
         strncmp(ar->source, "@vm/", 4) == 0;
}


/* Whether the value at 'x' is the object at 'v', or a table that keeps it
** in one of its fields (queue.Queue keeps its C queue in _q, and the C
** method sees that one). */
static int holds (lua_State *co, int x, int v) {
  int found = 0;
  if (lua_rawequal(co, x, v)) return 1;
  if (!lua_istable(co, x)) return 0;
  lua_pushnil(co);
  while (!found && lua_next(co, x)) {
    found = lua_rawequal(co, -1, v);
    lua_pop(co, 1);
  }
  if (found) lua_pop(co, 1);  /* the key lua_next left */
  return found;
}


/* The name of a local or upvalue of the frame 'ar' that holds the object
** at 'v', with that value pushed (or NULL, nothing pushed). */
static const char *namein (lua_State *co, lua_Debug *ar, int v) {
  const char *name;
  int i;
  for (i = 1; (name = lua_getlocal(co, ar, i)) != NULL; i++) {
    if (name[0] != '(' && holds(co, lua_gettop(co), v)) return name;
    lua_pop(co, 1);
  }
  if (!lua_getinfo(co, "f", ar)) return NULL;
  for (i = 1; (name = lua_getupvalue(co, -1, i)) != NULL; i++) {
    if (name[0] != '\0' && holds(co, lua_gettop(co), v)) {
      lua_remove(co, -2);  /* the function */
      return name;
    }
    lua_pop(co, 1);
  }
  lua_pop(co, 1);
  return NULL;
}


/* The class name of the value at the top, or NULL. */
static const char *classof (lua_State *co) {
  const char *cls = NULL;
  if (lua_getmetatable(co, -1)) {
    lua_getfield(co, -1, "__name");
    cls = lua_tostring(co, -1);  /* a string the metatable keeps */
    lua_pop(co, 2);
  }
  return cls;
}


/* Prints the object of the user's call, by its name there and its class
** ("lock_a (a Lock at 0x...)", "ev (a threading.Event)"), and returns 2
** if it is the object waited on itself, 1 if not, 0 if nothing was found
** (nothing printed). */
static int userobject (lua_State *co, const void *waited, const char *what) {
  lua_Debug ar, callee;
  const char *name, *cls;
  int level, same, top = lua_gettop(co);
  if (!lua_checkstack(co, 8) || !lua_getstack(co, 0, &callee)) return 0;
  for (level = 1; lua_getstack(co, level, &ar); level++) {
    if (!lua_getinfo(co, "S", &ar)) return 0;
    if (*ar.what != 'C' && !ours(&ar)) break;
    callee = ar;
  }
  if (!lua_getstack(co, level, &ar) || lua_getlocal(co, &callee, 1) == NULL)
    return 0;
  same = lua_touserdata(co, -1) == waited;
  name = namein(co, &ar, lua_gettop(co));
  cls = classof(co);
  lua_settop(co, top);
  if (same) fprintf(stderr, "%s (%s)", name ? name : "an object", what);
  else if (name && cls) fprintf(stderr, "%s (a %s)", name, cls);
  else return 0;
  return same ? 2 : 1;
}


/* Oldest thread first: the list is newest first. */
static void report (gil_t *g, gil_thread *t) {
  gilua_tstate *ts = (gilua_tstate *)t;
  if (t == NULL) return;
  report(g, t->next);
  fprintf(stderr, "  %s (ident %lu) ", t->name[0] ? t->name : "a thread",
          t->ident);
  if (t->sstate != SCHED_BLOCKED) fputs("does not wait\n", stderr);
  else {
    int shown = 0;
    fputs("waits on ", stderr);
    if (ts->waits_on != NULL && ts->current != NULL)
      shown = userobject(ts->current, ts->waits_on, t->swhat);
    if (shown == 0) fputs(t->swhat[0] ? t->swhat : "an event", stderr);
    if (t->sowner && shown != 1)  /* a Condition's lock is its own */
      fprintf(stderr, "%s%s", t->srole ? t->srole : " ",
              t->sowner == t->ident ? "itself" : nameof(g, t->sowner));
    fputc('\n', stderr);
  }
  if (ts->current) traceback(ts->current);
}


static void ondeadlock (gil_t *g) {
  report(g, g->threads);
}

/* }====================================================== */
