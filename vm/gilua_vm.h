/*
** gilua_vm.h: what the interpreter side offers to the modules.
** Internal to libgilua; the public API is include/gilua.h.
*/
#ifndef gilua_vm_h
#define gilua_vm_h

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/types.h>

#include <lua.h>
#include <lauxlib.h>

#include "gilua.h"

/*
** One per OS thread that runs Lua. Owned by that thread; the fields that
** other threads or a signal handler read are marked.
*/
typedef struct gilua_tstate {
  lua_State *L;                 /* this thread's own state (lua_newthread) */
  int ref;                      /* anchors L in the registry */
  /* The coroutine this OS thread runs right now: L itself or a coroutine
  ** resumed from it. Written by the owner only, read by its own signal
  ** handler (hence sig_atomic-safe pointer stores). */
  lua_State *volatile current;
  /* Drop-request hook bookkeeping, see gil/gil_signal.c. */
  lua_State *volatile hooked;   /* coroutine our hook is armed on, or NULL */
  lua_Hook saved_hook;          /* the user's hook on 'hooked' */
  int saved_mask, saved_count;
  volatile sig_atomic_t interrupt; /* Ctrl-C pending (main thread only) */
  volatile sig_atomic_t holds_gil;  /* set and cleared by the owner only */
  volatile sig_atomic_t in_hookwork; /* owner is changing hooks: hands off */
  pthread_t thread;             /* read by GIL waiters (under the GIL mutex) */
  pid_t native_id;
  unsigned long ident;
  char name[64];                /* for statistics and traces */
  /* statistics, written by the owner under the GIL mutex */
  double hold_since, held, waited;
  unsigned long acquisitions, drops_requested, drops_received;
  /* the rest of the GIL's bookkeeping, under the GIL mutex (gil/gil.c) */
  int gstate;                   /* running, waiting or blocked, for traces */
  unsigned long seq;            /* registration order, for listings */
  unsigned epoch;               /* the interpreter this state belongs to */
  struct gil_tbuf *trace;       /* events being recorded, or NULL */
  int released;                 /* nesting depth of gilua_release (owner) */
  struct gilua_tstate *next, *prev; /* all thread states, under the GIL mutex */
} gilua_tstate;

/* The calling thread's state, or NULL if it has none. */
gilua_tstate *gilua_ts(void);

/* The main state of the interpreter, and the main thread's ident. */
lua_State *gilua_mainstate(void);
unsigned long gilua_mainident(void);

/* Thread states (vm/gilua_state.c). gilua_tstate_new registers the calling
** thread and takes the GIL; gilua_tstate_free releases it. */
gilua_tstate *gilua_tstate_new(lua_State *main);
void gilua_tstate_free(gilua_tstate *ts);

/* The allocator of the interpreter's state (vm/gilua_alloc.c): size-class
** pools, or the system's malloc when GILUA_MALLOC=system. *pool is what to
** pass to lua_newstate. After lua_close, gilua_pool_free(f, ud) gives the
** pools back when f (from lua_getallocf) is the pool allocator. */
typedef struct gilua_pool gilua_pool;
lua_Alloc gilua_allocator(gilua_pool **pool);
void gilua_pool_free(lua_Alloc f, void *ud);

/* Runs coroutine 'co' from the current one, keeping 'current' right so the
** GIL's drop request reaches the coroutine that runs (vm/gilua_coroutine.c).
** Same contract as lua_resume. */
int gilua_resume(lua_State *L, lua_State *co, int narg, int *nres);

/* coroutine.resume's core: resumes 'co' with the narg values on top of L
** and moves its results (or its error) to L. Returns the number of values
** moved, or -1 on error with the error object on top of L. */
int gilua_coresume(lua_State *L, lua_State *co, int narg);

/*
** Errors (vm/gilua_error.c). Exception classes are found by their qualified
** name ("RuntimeError", "queue.Empty") in the registry of classes that
** Exception:extend(name) fills. gilua_raise never returns: write
** "return gilua_raise(...)" as with luaL_error.
*/
void gilua_pushexception(lua_State *L, const char *cls, const char *msg);
int gilua_raise(lua_State *L, const char *cls, const char *fmt, ...);

/*
** Python-style arguments (vm/gilua_args.c): a call takes either positional
** arguments from index 'first' on, or one options table there (a table
** without a metatable). gilua_arg pushes the argument at position 'pos'
** (0-based from 'first') or the field 'name', and returns its type.
*/
typedef struct gilua_args { lua_State *L; int first; int opts; } gilua_args;
void gilua_args_init(gilua_args *a, lua_State *L, int first);
int gilua_arg(gilua_args *a, int pos, const char *name);
int gilua_arg_bool(gilua_args *a, int pos, const char *name, int def);
/* A timeout in seconds: nil means forever (-1); negative is a ValueError. */
double gilua_arg_timeout(gilua_args *a, int pos, const char *name);

/* Time helpers (vm/gilua_time.c). */
double gilua_monotonic(void);
/* Sleeps without the GIL for 'secs', restarting after signals; returns 1 if
** interrupted by Ctrl-C (main thread). Caller must NOT hold the GIL. */
int gilua_nap(double secs);
/* An absolute CLOCK_MONOTONIC deadline 'secs' from now, for timed waits on
** condition variables initialised with gilua_cond_init. */
void gilua_deadline(struct timespec *ts, double secs);
void gilua_cond_init(pthread_cond_t *c);
/* The one timed wait on a condition variable: with 'deadline' NULL it waits
** for ever; the main thread leaves it on Ctrl-C. Returns 0, ETIMEDOUT or
** EINTR (Ctrl-C: call gilua_checkinterrupt once the GIL is back). */
int gilua_condwait(pthread_cond_t *c, pthread_mutex_t *m,
                   const struct timespec *deadline);

/* Ctrl-C (gil/gil_signal.c): with 'on', SIGINT makes the main thread raise
** KeyboardInterrupt at its next Lua instruction, or cuts short its current
** gilua_nap; with 0, SIGINT gets its default action back. */
void gilua_sigint(int on);
int gilua_sigint_on(void);
/* Raises KeyboardInterrupt if a Ctrl-C is pending for the calling thread
** (call with the GIL, after a blocking call). */
void gilua_checkinterrupt(lua_State *L);
/* 1 if a Ctrl-C is pending for the calling thread, else 0: what a wait
** loop running without the GIL tests on EINTR (GIL: any). */
int gilua_interrupt_pending(void);

/*
** Waiting for state protected by the GIL (vm/gilua_waitq.c): the one way a
** C object (lock, queue, ...) puts threads to sleep. Call with the GIL;
** gilua_waitq_wait releases it while sleeping and returns 0 if 'deadline'
** (from gilua_deadline; NULL: none) passed; it raises KeyboardInterrupt on
** Ctrl-C in the main thread. After waking, look at the state again: another
** thread may have got there first.
*/
typedef struct gilua_waitq {
  int waiters;                  /* under the GIL */
  int asleep;                   /* under 'm': threads between lock and unlock */
  unsigned long gen;            /* under the GIL and 'm' */
  pthread_mutex_t m;
  pthread_cond_t c;
} gilua_waitq;
void gilua_waitq_init(gilua_waitq *wq);
void gilua_waitq_destroy(gilua_waitq *wq);
int gilua_waitq_wait(lua_State *L, gilua_waitq *wq, const struct timespec *deadline);
void gilua_waitq_wake(gilua_waitq *wq, int all);

/* Embedded Lua sources and C modules (vm/gilua_modules.c). */
void gilua_preload(lua_State *L);
int gilua_loadembedded(lua_State *L, const char *modname);

/* Module openers */
int luaopen_gilua_thread(lua_State *L);  /* "_thread" */
int luaopen_gilua_time(lua_State *L);    /* "time" */
int luaopen_gilua_sys(lua_State *L);     /* "sys" */
int luaopen_gilua_gil(lua_State *L);     /* "gil" */
int luaopen_gilua_queue(lua_State *L);   /* "_queue" */
int luaopen_gilua_multiprocessing(lua_State *L); /* "_multiprocessing" */
int luaopen_gilua_subprocess(lua_State *L); /* "_subprocess" */
int luaopen_gilua_asyncio(lua_State *L);  /* "_asyncio" */
void gilua_openos(lua_State *L);         /* os.getpid, os.getppid, os.cpu_count */
void gilua_openio(lua_State *L);         /* GIL-releasing io and os.execute */
void gilua_opencoroutine(lua_State *L);  /* tracking coroutine.resume/wrap */

#endif
