/*
** gilua_interp.c: several interpreters in one process, a GIL each, and
** threads moving between them.
**
** An interpreter (gilua_interp, gilua_vm.h) is a main lua_State with its
** own GIL, modules and threads. The registry below lists them, under one
** lock ('reg'), which also guards what other threads may change of an
** interpreter: its state, who is busy in it, its thread states.
**
** A thread runs in one interpreter at a time: its current thread state
** is the thread-local gil_self(), whose GIL is the one it takes and
** releases. It has a thread state in every interpreter it has run in:
** the one it was started in or attached to (a base state), and one per
** interpreter it visits through gilua_interp_enter (a visitor state, kept
** for its next visit, so that a thread calling into another interpreter a
** thousand times shows up there as one thread, not a thousand). The
** thread's states are listed in the thread-local 'mine'. Entering lets
** the current GIL go and takes the other one (never both: no thread holds
** two GILs, so no two GILs can deadlock), and leaving does the reverse.
**
** An interpreter lists its thread states ('members'). Closing one
** (gilua_state.c) marks the states that other threads keep there dead;
** their owners free them when they next look through their list. A
** visitor whose thread ends while its interpreter is open becomes a
** zombie: its Lua thread is unreferenced by the next thread that holds
** that interpreter's GIL.
**
** Slots are made once and never freed: a thread parked on the GIL of a
** closed interpreter (a daemon thread) still points to it. The first slot
** is the main interpreter's, made before any interpreter is opened, so
** that the switch interval may be set and the (empty) statistics read in
** advance, and kept for the next main interpreter.
**
** Lock order: 'reg', then a GIL's internal mutex. Nothing takes 'reg'
** while waiting for a GIL.
*/
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "gilua_vm.h"

static pthread_mutex_t reg = PTHREAD_MUTEX_INITIALIZER;
static gilua_interp *main_slot;          /* made once, see above */
static gilua_interp *slots;              /* every slot, main_slot first */
static lua_Integer last_id;              /* the last sub-interpreter's id */
static pthread_once_t made = PTHREAD_ONCE_INIT;

/* The calling OS thread's thread states, linked by 'tnext'. Other threads
** only mark them dead, under 'reg'. */
static __thread gilua_tstate *mine;

#define lockreg()    pthread_mutex_lock(&reg)
#define unlockreg()  pthread_mutex_unlock(&reg)


static gilua_interp *newslot (void) {
  gilua_interp *I = calloc(1, sizeof *I);
  if (I == NULL) return NULL;
  gil_init(&I->gil, &gil_policy_new);
  I->state = GILUA_FREE;
  return I;
}


static void before_fork (void);
static void after_fork_parent (void);
static void after_fork_child (void);

static void make_main (void) {
  main_slot = slots = newslot();
  if (main_slot == NULL) abort();  /* at start-up: nothing to run without */
  gilua_hook_init();
  pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}


static gilua_interp *mainslot (void) {
  pthread_once(&made, make_main);
  return main_slot;
}


gil_t *gilua_gil (void) {
  gilua_tstate *ts = gilua_ts();
  return ts ? ts->gt.gil : &mainslot()->gil;
}


gilua_interp *gilua_interp_current (void) {
  gilua_tstate *ts = gilua_ts();
  gilua_interp *M;
  if (ts) return ts->interp;
  M = mainslot();
  return M->state == GILUA_OPEN ? M : NULL;
}


lua_State *gilua_mainstate (void) {
  gilua_interp *I = gilua_interp_current();
  return I ? I->L : NULL;
}


unsigned long gilua_mainident (void) {
  gilua_interp *I = gilua_interp_current();
  return I ? I->main_ident : 0;
}


/*
** {======================================================
** Slots (for gilua_state.c)
** =======================================================
*/

/* A slot for a new interpreter, in state GILUA_OPENING: the main one if
** none is open (id 0), else a free one or a new one (the next id). */
gilua_interp *gilua_interp_slot (void) {
  gilua_interp *M = mainslot(), *I = NULL, **p;
  lockreg();
  if (M->state == GILUA_FREE) {
    I = M;
    I->id = 0;
  }
  else {
    for (p = &slots; *p; p = &(*p)->next)
      if ((*p)->state == GILUA_FREE && *p != M) break;
    if (*p == NULL) *p = newslot();
    if ((I = *p) != NULL) I->id = ++last_id;
  }
  if (I != NULL) {
    I->state = GILUA_OPENING;
    I->busy = NULL;
    I->members = I->zombies = NULL;
    I->warn_on = I->warn_midline = 0;
  }
  unlockreg();
  return I;
}


void gilua_interp_opened (gilua_interp *I) {
  lockreg();
  I->state = GILUA_OPEN;
  unlockreg();
}


static void free_zombies (gilua_interp *I, int unref) {
  gilua_tstate *z, *next;
  lockreg();
  z = I->zombies;
  I->zombies = NULL;
  unlockreg();
  for (; z; z = next) {
    next = z->vnext;
    if (unref) luaL_unref(I->spawner, LUA_REGISTRYINDEX, z->ref);
    free(z);
  }
}


/* Nobody enters I any more, except 'closer' (the thread state closing
** it, holding its GIL): the states other threads have here are dead. */
void gilua_interp_closing (gilua_interp *I, gilua_tstate *closer) {
  gilua_tstate *v;
  lockreg();
  I->state = GILUA_CLOSING;
  for (v = I->members; v; v = v->vnext)
    if (v != closer) v->dead = 1;
  I->members = closer;
  if (closer) closer->vnext = NULL;
  unlockreg();
  free_zombies(I, 0);  /* lua_close frees their threads */
}


/* I is closed: its slot serves the next interpreter. */
void gilua_interp_free (gilua_interp *I) {
  lockreg();
  I->state = GILUA_FREE;
  I->L = I->spawner = NULL;
  I->members = NULL;
  I->busy = NULL;
  unlockreg();
}


gilua_interp *gilua_interp_main (void) {
  return mainslot();
}


/* The interpreters open or opening (a slot stays valid for good). */
int gilua_interp_list (gilua_interp **out, int max) {
  gilua_interp *I;
  int n = 0;
  mainslot();
  lockreg();
  for (I = slots; I; I = I->next)
    if (I->state == GILUA_OPEN || I->state == GILUA_OPENING) {
      if (n < max) out[n] = I;
      n++;
    }
  unlockreg();
  return n;
}


/* The open interpreter whose main state is L, or NULL. */
static gilua_interp *bystate (lua_State *L) {
  gilua_interp *I;
  for (I = slots; I; I = I->next)
    if (I->state == GILUA_OPEN && I->L == L) return I;
  return NULL;
}


/* Whether L is the main state of an open interpreter. */
int gilua_interp_isopen (lua_State *L) {
  int open;
  lockreg();
  open = bystate(L) != NULL;
  unlockreg();
  return open;
}


static gilua_interp *byid (lua_Integer id) {
  gilua_interp *I;
  for (I = slots; I; I = I->next)
    if (I->state == GILUA_OPEN && I->id == id) return I;
  return NULL;
}


/* The sub-interpreters made from Lua that are still open, for the main
** interpreter's close: fills up to 'max' ids, returns how many there are. */
int gilua_interp_leftovers (lua_Integer *ids, int max) {
  gilua_interp *I;
  int n = 0;
  lockreg();
  for (I = slots; I; I = I->next)
    if (I->state == GILUA_OPEN && !I->capi) {
      if (n < max) ids[n] = I->id;
      n++;
    }
  unlockreg();
  return n;
}

/* }====================================================== */


/*
** {======================================================
** Thread states
** =======================================================
*/

/* Only called by the owner, with 'reg'. */
static void unlink_mine (gilua_tstate *ts) {
  gilua_tstate **p;
  for (p = &mine; *p; p = &(*p)->tnext)
    if (*p == ts) {
      *p = ts->tnext;
      break;
    }
  ts->tnext = NULL;
}


static void unlink_member (gilua_interp *I, gilua_tstate *ts) {
  gilua_tstate **p;
  for (p = &I->members; *p; p = &(*p)->vnext)
    if (*p == ts) {
      *p = ts->vnext;
      break;
    }
  ts->vnext = NULL;
}


/* A state of the calling thread joins its list and its interpreter's
** (registry lock held). */
static void adopt (gilua_tstate *ts) {
  gilua_interp *I = ts->interp;
  ts->tnext = mine;
  mine = ts;
  ts->vnext = I->members;
  I->members = ts;
}


/* A new state for the calling thread in I, not registered with its GIL
** yet. The thread's name and ident come along from the state it
** runs in now, if any. */
static gilua_tstate *tstate_make (gilua_interp *I, gilua_tstate *from) {
  gilua_tstate *ts = calloc(1, sizeof *ts);
  gil_thread *t;
  if (ts == NULL) return NULL;
  t = &ts->gt;
  gil_thread_init(t, &I->gil);
  ts->ref = LUA_NOREF;
  ts->interp = I;
  t->thread = pthread_self();
  t->ident = (unsigned long)t->thread;
  if (from) {
    t->native_id = from->gt.native_id;
    memcpy(t->name, from->gt.name, sizeof t->name);
  }
  else {
    t->native_id = (pid_t)syscall(SYS_gettid);
    snprintf(t->name, sizeof t->name, "Thread-%d", (int)t->native_id);
  }
  return ts;
}


/* The thread leaves the state it runs in (if any) for 'ts': that GIL is
** let go (nested releases count, as gilua_release's), a pending Ctrl-C
** moves along. */
static void switch_to (gilua_tstate *ts, gilua_tstate *from) {
  ts->outer = from;
  if (from) {
    if (from->released++ == 0) gil_release(&from->gt);
    if (from->gt.interrupt) {
      from->gt.interrupt = 0;
      ts->gt.interrupt = 1;
    }
  }
  gil_setself(&ts->gt);
}


/* ... and back: the thread runs in 'ts->outer' again (or nowhere). */
static void switch_back (gilua_tstate *ts) {
  gilua_tstate *from = ts->outer;
  ts->outer = NULL;
  if (from == NULL) {
    gil_setself(NULL);
    return;
  }
  if (ts->gt.interrupt) {
    ts->gt.interrupt = 0;
    from->gt.interrupt = 1;
  }
  gil_setself(&from->gt);
  if (--from->released == 0) {
    gil_acquire(&from->gt);
    if (gilua_hook_wanted(from)) gilua_hook_sync(from);
  }
}


/* Gives a state of the calling thread its Lua thread (GIL held). */
static void tstate_lua (gilua_tstate *ts) {
  gilua_interp *I = ts->interp;
  ts->L = lua_newthread(I->spawner);
  ts->ref = luaL_ref(I->spawner, LUA_REGISTRYINDEX);
  ts->current = ts->L;
  gilua_hook_thread(ts->L);
}


/* Whether the calling thread runs in I already, here or further out. */
static int inside (gilua_interp *I) {
  gilua_tstate *ts;
  for (ts = gilua_ts(); ts; ts = ts->outer)
    if (ts->interp == I) return 1;
  return 0;
}


/*
** The state of a thread that opens I (gilua_state.c): it becomes I's main
** thread and will hold I's GIL (gil_open gives it). A thread that runs in
** another interpreter leaves it until I is closed.
*/
gilua_tstate *gilua_interp_opener (gilua_interp *I) {
  gilua_tstate *from = gilua_ts();
  gilua_tstate *ts = tstate_make(I, from);
  if (ts == NULL) return NULL;
  if (from == NULL) strcpy(ts->gt.name, "MainThread");
  I->main_ident = ts->gt.ident;
  lockreg();
  adopt(ts);
  unlockreg();
  switch_to(ts, from);
  return ts;
}


gilua_tstate *gilua_tstate_new (lua_State *main) {
  gilua_tstate *from = gilua_ts(), *ts;
  gilua_interp *I;
  lockreg();
  I = bystate(main);
  if (I == NULL || inside(I) || (ts = tstate_make(I, from)) == NULL) {
    unlockreg();
    return NULL;
  }
  gil_register(&ts->gt);
  adopt(ts);
  unlockreg();
  switch_to(ts, from);
  gil_acquire(&ts->gt);
  tstate_lua(ts);
  return ts;
}


/* A visitor whose thread leaves Lua for good. */
static void drop_visitor (gilua_tstate *v) {
  int dead;
  lockreg();
  dead = v->dead;
  unlockreg();
  if (!dead) gil_exit(&v->gt);  /* the GIL's own mutex only */
  lockreg();
  unlink_mine(v);
  if (!v->dead) {               /* its Lua thread goes with the next holder */
    gilua_interp *I = v->interp;
    unlink_member(I, v);
    v->vnext = I->zombies;
    I->zombies = v;
    v = NULL;
  }
  unlockreg();
  free(v);
}


/* Forget the calling thread's state and release the GIL (unless an
** enclosing gilua_release let it go already: then the state is dropped
** without touching Lua). When it was the thread's last base state, its
** visitors go too. */
void gilua_tstate_free (gilua_tstate *ts) {
  gilua_tstate *v, *next;
  int bases = 0;
  if (ts->released == 0)
    luaL_unref(ts->interp->spawner, LUA_REGISTRYINDEX, ts->ref);
  ts->current = NULL;
  gil_exit(&ts->gt);
  lockreg();
  unlink_mine(ts);
  if (!ts->dead) unlink_member(ts->interp, ts);
  for (v = mine; v; v = v->tnext) bases += !v->visitor;
  unlockreg();
  switch_back(ts);
  free(ts);
  if (bases == 0)
    for (v = mine; v; v = next) {
      next = v->tnext;
      drop_visitor(v);
    }
}


/* The state that opened I is done with it (gilua_state.c, after
** gil_exit): the thread runs where it was before. */
void gilua_interp_unopen (gilua_tstate *ts) {
  lockreg();
  unlink_mine(ts);
  unlink_member(ts->interp, ts);
  unlockreg();
  switch_back(ts);
  free(ts);
}

/* The thread that made I from Lua keeps its state there as a visitor's,
** and goes back where it came from (I's GIL released). */
void gilua_interp_keep (gilua_tstate *ts) {
  lockreg();
  ts->visitor = 1;
  unlockreg();
  gilua_interp_leave(ts);
}

/* }====================================================== */


/*
** {======================================================
** Entering and leaving
** =======================================================
*/

gilua_tstate *gilua_interp_enter (lua_Integer id, int claim, int *err) {
  gilua_tstate *from = gilua_ts(), *ts, **p, *corpses = NULL;
  gilua_interp *I;
  int fresh = 0;
  lockreg();
  I = byid(id);
  if (I == NULL) {
    unlockreg();
    *err = GILUA_ENOTFOUND;
    return NULL;
  }
  if (inside(I) || (claim && (I->busy || I->capi))) {
    unlockreg();
    *err = GILUA_ERUNNING;
    return NULL;
  }
  /* the state kept from the last visit; dead ones are freed on the way */
  for (p = &mine; (ts = *p) != NULL; ) {
    if (ts->dead) {
      *p = ts->tnext;
      ts->tnext = corpses;
      corpses = ts;
      continue;
    }
    if (ts->visitor && ts->interp == I) break;
    p = &ts->tnext;
  }
  if (ts == NULL) {
    if ((ts = tstate_make(I, from)) == NULL) {
      unlockreg();
      *err = GILUA_ENOMEM;
      return NULL;
    }
    ts->visitor = 1;
    ts->released = 1;
    gil_register(&ts->gt);
    adopt(ts);
    fresh = 1;
  }
  if (claim) I->busy = ts;
  ts->claimed = claim;
  unlockreg();
  while (corpses) {
    gilua_tstate *next = corpses->tnext;
    free(corpses);
    corpses = next;
  }
  switch_to(ts, from);
  ts->released = 0;
  gil_acquire(&ts->gt);
  if (fresh) tstate_lua(ts);
  ts->current = ts->L;
  if (gilua_hook_wanted(ts)) gilua_hook_sync(ts);
  if (I->zombies) free_zombies(I, 1);
  return ts;
}


void gilua_interp_leave (gilua_tstate *ts) {
  gilua_interp *I = ts->interp;
  ts->released = 1;
  gil_release(&ts->gt);
  if (ts->claimed) {
    ts->claimed = 0;
    lockreg();
    I->busy = NULL;
    unlockreg();
  }
  switch_back(ts);
}


typedef struct listed { lua_Integer id; const char *whence; int running; } listed;

static int byid_order (const void *a, const void *b) {
  lua_Integer x = ((const listed *)a)->id, y = ((const listed *)b)->id;
  return (x > y) - (x < y);
}


/* Copied out under the lock, made into tables after: Lua allocates, and
** a finalizer may run then. */
void gilua_interp_pushlist (lua_State *L) {
  listed *info = NULL;
  gilua_interp *I;
  int n, i, size = 0;
  for (;;) {
    lockreg();
    n = 0;
    for (I = slots; I; I = I->next)
      if (I->state == GILUA_OPEN) {
        if (n < size) {
          info[n].id = I->id;
          info[n].whence = I->whence;
          info[n].running = I->capi || I->busy != NULL;
        }
        n++;
      }
    unlockreg();
    if (n <= size) break;
    free(info);
    size = n + 4;
    if ((info = malloc((size_t)size * sizeof *info)) == NULL) {
      luaL_error(L, "not enough memory");
      return;
    }
  }
  qsort(info, (size_t)n, sizeof *info, byid_order);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, info[i].id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, info[i].whence);
    lua_setfield(L, -2, "whence");
    lua_pushboolean(L, info[i].running);
    lua_setfield(L, -2, "running");
    lua_rawseti(L, -2, i + 1);
  }
  free(info);
}

/* }====================================================== */


/*
** {======================================================
** fork
** =======================================================
*/

/*
** In the child of fork() only the forking thread exists. It held the GIL
** of the interpreter it ran in, and had let go of those it left to come
** there: those interpreters live on, with the thread as their only one,
** owning the innermost GIL; the thread states of the other threads there
** become zombies (the next holder drops their Lua threads). Every other
** interpreter had threads that the child does not have, and perhaps one of
** them in the middle of changing its state: those are dropped, left as
** they are (as CPython's child keeps only its main interpreter), their
** slots never used again. The registry itself was locked across fork, so
** it is whole.
*/
static int instack (gilua_tstate *ts) {
  gilua_tstate *t;
  for (t = gilua_ts(); t; t = t->outer)
    if (t == ts) return 1;
  return 0;
}


static void before_fork (void) { lockreg(); }
static void after_fork_parent (void) { unlockreg(); }

static void after_fork_child (void) {
  gilua_tstate *ts, *cur = gilua_ts(), **p;
  gilua_interp *I;
  if (cur != NULL)
    for (I = slots; I; I = I->next) {
      if (I->state == GILUA_FREE || I->state == GILUA_DROPPED) continue;
      if (!inside(I)) {
        I->state = GILUA_DROPPED;
        continue;
      }
      for (p = &I->members; (ts = *p) != NULL; ) {
        if (instack(ts)) p = &ts->vnext;
        else {
          *p = ts->vnext;
          ts->vnext = I->zombies;
          I->zombies = ts;
        }
      }
      I->busy = NULL;
    }
  for (ts = cur; ts; ts = ts->outer) {
    gil_after_fork(&ts->gt);
    if (ts != cur) gil_release(&ts->gt);
    if (ts->interp->busy == NULL && ts->claimed) ts->interp->busy = ts;
  }
  /* This thread's other states: zombies, or in dropped interpreters. */
  for (p = &mine; (ts = *p) != NULL; ) {
    if (instack(ts)) p = &ts->tnext;
    else *p = ts->tnext;
  }
  unlockreg();                  /* before_fork took it */
}

/* }====================================================== */
