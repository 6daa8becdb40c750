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
#include "gil.h"

typedef struct gilua_interp gilua_interp;

/*
** One per OS thread and interpreter the thread runs Lua in. Owned by that
** thread; the fields that other threads or a signal handler read are
** marked. What the GIL keeps per thread is its first member, so that
** gil_self() is the thread state the OS thread runs in right now.
*/
typedef struct gilua_tstate {
  gil_thread gt;                /* the GIL's record of this thread */
  lua_State *L;                 /* this thread's own state (lua_newthread) */
  int ref;                      /* anchors L in the registry */
  /* The coroutine this OS thread runs right now: L itself or a coroutine
  ** resumed from it. Written by the owner only, read by its own signal
  ** handler (hence sig_atomic-safe pointer stores). */
  lua_State *volatile current;
  /* Drop-request hook bookkeeping, see vm/gilua_hook.c. */
  lua_State *volatile hooked;   /* coroutine our hook is armed on, or NULL */
  lua_Hook saved_hook;          /* the user's hook on 'hooked' */
  int saved_mask, saved_count;
  volatile sig_atomic_t in_hookwork; /* owner is changing hooks: hands off */
  int released;                 /* nesting depth of gilua_release (owner) */
  /* Interpreters (vm/gilua_interp.c) */
  gilua_interp *interp;         /* the one this state runs in */
  struct gilua_tstate *outer;   /* the state the thread left to come here */
  int visitor;                  /* made by gilua_interp_enter, kept for
                                ** the thread's next visit */
  int claimed;                  /* this visit made the interpreter busy */
  int dead;                     /* its interpreter closed (registry lock) */
  const void *waits_on;         /* under the scheduler: the object it waits
                                ** on, for the deadlock report */
  struct gilua_tstate *tnext;   /* the OS thread's states (registry lock) */
  struct gilua_tstate *vnext;   /* the interpreter's members (registry lock) */
} gilua_tstate;

/* The calling thread's state, or NULL if it has none. */
#define gilua_ts()  ((gilua_tstate *)gil_self())

/*
** An interpreter: a main lua_State with its own GIL, its own modules and
** its own threads (vm/gilua_interp.c). Several may be open at once; a
** thread runs in one at a time. A slot is made once and never freed (the
** threads of a closed interpreter stay parked on its GIL, see gil/gil.c);
** a closed one's slot serves the next interpreter opened, under a new id.
*/
enum { GILUA_FREE, GILUA_OPENING, GILUA_OPEN, GILUA_CLOSING, GILUA_DROPPED };

struct gilua_interp {
  gil_t gil;                    /* its GIL: first, see above */
  lua_Integer id;               /* 0: the main interpreter */
  int state;                    /* GILUA_FREE ... (registry lock) */
  int capi;                     /* opened by gilua_open/openlibs */
  const char *whence;           /* Python's words: how it was made */
  lua_State *L;                 /* its main state */
  lua_State *spawner;           /* makes thread states, see gilua_state.c */
  const luaL_Reg *cmodules;     /* its C modules (given by stdlib/) */
  unsigned long main_ident;     /* the thread that opened it */
  gilua_tstate *busy;           /* in exec/call there (registry lock) */
  gilua_tstate *members;        /* its thread states (registry lock) */
  gilua_tstate *zombies;        /* states gone, refs to drop (same) */
  int warn_on, warn_midline;    /* warn()'s state (GIL) */
  struct gilua_interp *next;    /* every slot (registry lock) */
};

/* The interpreter the calling thread runs in; with no thread state, the
** main one (NULL if none is open). */
gilua_interp *gilua_interp_current(void);
/* The GIL of gilua_interp_current(), or the main GIL made in advance when
** no interpreter is open (vm/gilua_gil.c), its main state and the ident
** of its main thread. */
gil_t *gilua_gil(void);
lua_State *gilua_mainstate(void);
unsigned long gilua_mainident(void);

/* The interpreter (vm/gilua_state.c): gilua_open and gilua_openlibs of
** gilua.h, given the C modules to preload (stdlib/gilua_stdlib.c). */
lua_State *gilua_vm_open(const luaL_Reg *cmodules);
int gilua_vm_openlibs(lua_State *L, const luaL_Reg *cmodules);

/* Thread states (vm/gilua_interp.c). gilua_tstate_new registers the
** calling thread in the interpreter whose main state is 'main' and takes
** its GIL (NULL: no such interpreter open, the thread is in it already, or
** no memory); a thread running in another interpreter leaves it, GIL
** released, until gilua_tstate_free, which releases the GIL and takes the
** other one back. */
gilua_tstate *gilua_tstate_new(lua_State *main);
void gilua_tstate_free(gilua_tstate *ts);

/*
** Moving between interpreters (vm/gilua_interp.c). A thread that holds
** the GIL of the interpreter it runs in calls gilua_interp_enter: it lets
** that GIL go, takes I's with a thread state of its own there (kept from
** its last visit, or made now) and returns it; gilua_interp_leave lets
** I's GIL go and takes the first one back. With 'claim', the visit runs
** I's main code (exec, call): I is busy meanwhile and nobody else may
** claim or close it. On failure enter returns NULL and says why in *err:
** GILUA_ENOTFOUND (no such interpreter open), GILUA_ERUNNING (busy, or
** opened from C: its host runs it), GILUA_ENOMEM.
*/
enum { GILUA_ENOTFOUND = 1, GILUA_ERUNNING, GILUA_ENOMEM };
gilua_tstate *gilua_interp_enter(lua_Integer id, int claim, int *err);
void gilua_interp_leave(gilua_tstate *ts);
/* Pushes an array of the open interpreters, in id order, each a table
** {id =, whence =, running =}. GIL held. */
void gilua_interp_pushlist(lua_State *L);

/* For gilua_state.c, which opens and closes interpreters: a slot for a
** new one (NULL: no memory); the calling thread's state as its main thread
** (it leaves the interpreter it runs in, if any); the new one is open;
** it is closing (only 'closer' may run there), closed (the slot is free);
** the opener's state is done with (the thread is back where it was
** before), or kept as a visitor's (the interpreter was made from Lua);
** the ids of the open interpreters made from Lua (up to 'max'; returns
** how many there are). */
gilua_interp *gilua_interp_slot(void);
gilua_tstate *gilua_interp_opener(gilua_interp *I);
void gilua_interp_opened(gilua_interp *I);
void gilua_interp_closing(gilua_interp *I, gilua_tstate *closer);
void gilua_interp_free(gilua_interp *I);
void gilua_interp_unopen(gilua_tstate *ts);
void gilua_interp_keep(gilua_tstate *ts);
int gilua_interp_leftovers(lua_Integer *ids, int max);

/* The main interpreter's slot (made at first use); the slots of the
** interpreters open or opening (up to 'max'; returns how many there are). */
gilua_interp *gilua_interp_main(void);
int gilua_interp_list(gilua_interp **out, int max);
int gilua_interp_isopen(lua_State *L);  /* L: an open interpreter's main state */

/* The GIL's side of an interpreter's life (vm/gilua_gil.c): it is open
** (it joins a trace running); it is closing, nobody else runs there (its
** events and figures are kept). The path of the running trace (a copy to
** free), or NULL. */
void gilua_gil_opened(gilua_interp *I);
void gilua_gil_closing(gilua_interp *I);
char *gilua_trace_path(void);

/* Interpreters made and closed from Lua (vm/gilua_state.c), GIL held:
** gilua_interp_create returns the new one's id (it has the C modules of
** the caller's, and its package.path and cpath); gilua_interp_close closes
** one that is not busy (not the caller's own), waiting for its non-daemon
** threads. Both return 0 or an error code as above (GILUA_ERUNNING also
** when I is the caller's). */
int gilua_interp_create(lua_State *L, lua_Integer *id);
int gilua_interp_close(lua_State *L, lua_Integer id);

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
/* Queues' (block, timeout) from index 'first' on, positional or one
** options table {block =, timeout =}; none: block for ever. */
void gilua_arg_block(lua_State *L, int first, int *block, double *timeout);

/* Clocks, deadlines and interruptible waits, from gil/ (see gil.h):
** gilua_nap sleeps without the GIL (caller must NOT hold it) and returns 1
** if Ctrl-C cut it short; gilua_deadline makes an absolute deadline for
** condition variables made with gilua_cond_init; gilua_condwait is the one
** timed wait on them (NULL: for ever), left by the main thread on Ctrl-C:
** it returns 0, ETIMEDOUT or EINTR (then call gilua_checkinterrupt once the
** GIL is back). Ctrl-C itself is in gilua.h (gilua_sigint, ...). */
#define gilua_monotonic   gil_monotonic
#define gilua_nap         gil_nap
#define gilua_deadline    gil_deadline
#define gilua_cond_init   gil_cond_init
#define gilua_condwait    gil_condwait

/* How the GIL's requests reach the Lua code a thread runs (vm/gilua_hook.c):
** set up once per interpreter; prepare a new thread state's Lua thread;
** wrap debug.sethook/gethook where needed (after luaL_openlibs); remove our
** hook from 'co', which leaves this OS thread (a coroutine that yielded or
** ended), then answer any request that arrived meanwhile. */
void gilua_hook_init(void);
void gilua_hook_thread(lua_State *L);
void gilua_hook_openlibs(lua_State *L);
void gilua_hook_disarm(gilua_tstate *ts, lua_State *co);
/* Whether the VM must count instructions on the coroutines of 'ts' (the
** policy old with threads; always under GIL_POLL_HOOK); if so, after the
** thread took the GIL back or switched coroutines, gilua_hook_sync makes
** sure the running coroutine does. */
#ifdef GIL_POLL_HOOK
#define gilua_hook_wanted(ts)  ((void)(ts), 1)
#else
#define gilua_hook_wanted(ts)  gil_ticking((ts)->gt.gil)
#endif
void gilua_hook_sync(gilua_tstate *ts);

/*
** Waiting for state protected by the GIL (vm/gilua_waitq.c): the one way a
** C object (lock, queue, ...) puts threads to sleep. Call with the GIL;
** gilua_waitq_wait releases it while sleeping and returns 0 if 'until'
** (from gilua_until; GILUA_FOREVER: none) passed; it raises KeyboardInterrupt on
** Ctrl-C in the main thread. After waking, look at the state again: another
** thread may have got there first.
*/
typedef struct gilua_waitq {
  int waiters;                  /* under the GIL */
  int asleep;                   /* under 'm': threads between lock and unlock */
  unsigned long gen;            /* under the GIL and 'm' */
  pthread_mutex_t m;
  pthread_cond_t c;
  /* for the scheduler's deadlock report: what the queue belongs to, and
  ** where its owner's ident is kept (NULL: no owner) */
  const char *what;
  const unsigned long *owner;
  const void *obj;              /* the object, as tostring shows it */
} gilua_waitq;
void gilua_waitq_init(gilua_waitq *wq, const char *what,
                      const unsigned long *owner);
void gilua_waitq_destroy(gilua_waitq *wq);
int gilua_waitq_wait(lua_State *L, gilua_waitq *wq, double until);
void gilua_waitq_wake(gilua_waitq *wq, int all);

/*
** The deterministic scheduler (vm/gilua_sched.c, gil/gil_sched.c).
** gilua_clock is the clock of the program: gilua_monotonic(), or the
** virtual clock under the scheduler; gilua_until(timeout) a deadline on it
** (GILUA_FOREVER stays), for gilua_waitq_wait and gilua_sched_wait.
** With the scheduler on (gilua_sched_on), a wait for another thread is
** gilua_sched_wait(L, key, until): GIL held, returns 0 if the deadline
** passed, raises KeyboardInterrupt on Ctrl-C; gilua_sched_wake(key, all),
** by the thread that made the change waited for, makes the waiters
** runnable (a no-op with the scheduler off). gilua_sched_note says, before
** a wait, what it is on, and the thread it waits for ('owner', 0: none)
** as 'role' puts it (", held by "), for the deadlock report.
*/
#define gilua_sched_on(ts)  gil_sched_on((ts)->gt.gil)
double gilua_clock(void);
double gilua_until(double timeout);
int gilua_sched_wait(lua_State *L, const void *key, double until);
void gilua_sched_wake(const void *key, int all);
/* After a lock is taken: now and then a preemption point under the
** scheduler (gilua_sched_point: call it only if gilua_sched_on). */
void gilua_sched_point(void);
/* A wait in real time of 'secs' (an event loop's on descriptors) moves
** the virtual clock on as much. */
void gilua_sched_elapse(double secs);
void gilua_sched_note(unsigned long owner, const char *role,
                      const char *fmt, ...);

/*
** {==================================================================
** The helper layer every module uses: errors from errno, C classes,
** timeouts, interruptible waits on descriptors
** ===================================================================
*/

/* The registry field holding the classes made with extend(name), by name
** (vm/lua/class.lua fills it). */
#define GILUA_CLASSES_KEY "gilua.classes"

/*
** errno -> exception (vm/gilua_error.c). gilua_oserror raises Python's
** OSError subclass for 'err' (FileNotFoundError, PermissionError,
** ConnectionRefusedError, BrokenPipeError, TimeoutError, ...: the class
** name is gilua_oserror_class(err)) with Python's fields errno, strerror
** and filename. Its message is Python's, "[Errno 2] No such file or
** directory: 'x'"; without a file name it names the call instead:
** "[Errno 111] connect: Connection refused". 'call' and 'filename' may be
** NULL. gilua_oserror never returns (write "return gilua_oserror(...)").
*/
const char *gilua_oserror_class(int err);
void gilua_pushoserror(lua_State *L, int err, const char *call,
                       const char *filename);
int gilua_oserror(lua_State *L, int err, const char *call,
                  const char *filename);

/*
** C classes (vm/gilua_class.c): the metatable of a userdata type, made by
** the module opener. It is registered as 'name' (luaL_checkudata finds
** it; it is also its __name); 'methods' is a table that is __index and the
** metatable's field "methods" (for an __index function that falls back on
** it); 'meta' lists metamethods (__gc, __close, __tostring, __index, ...)
** or is NULL. Every function gets the metatable as upvalue 1, for a check
** by identity. Leaves the metatable on the stack.
*/
void gilua_newclass(lua_State *L, const char *name, const luaL_Reg *methods,
                    const luaL_Reg *meta);

/*
** Timeouts (vm/gilua_args.c): the one rule for every wait, Python's. The
** value at 'idx' must be nil (no limit: returns GILUA_FOREVER) or a
** number: not a number is a TypeError, NaN a ValueError, more than
** GILUA_TIMEOUT_MAX (inf among them) an OverflowError ("timeout value is
** too large"). A negative value waits not at all (GILUA_NEG_ZERO: Event,
** Condition, join, Semaphore, multiprocessing, subprocess), is a
** ValueError (GILUA_NEG_ERROR: queue.Queue, time.sleep) or, for -1
** exactly, waits for ever (GILUA_NEG_LOCK: Lock.acquire; other negatives
** are ValueErrors). Messages name the function 'fname' and the argument
** 'argname' (NULL: "timeout"). Returns the seconds, or GILUA_FOREVER.
** Lua code has the same rule as require("gilua.args").timeout(value,
** fname, negative, argname), negative being "zero", "error" or "lock"; and
** gilua_arg_timeout is it with GILUA_NEG_ERROR.
*/
#define GILUA_FOREVER (-1.0)
#define GILUA_TIMEOUT_MAX 9223372036.0   /* Python's threading.TIMEOUT_MAX */
enum { GILUA_NEG_ZERO, GILUA_NEG_ERROR, GILUA_NEG_LOCK };
double gilua_timeout(lua_State *L, int idx, const char *fname,
                     const char *argname, int negative);
int luaopen_gilua_core(lua_State *L);    /* "_gilua": the rule for Lua */

/*
** Waiting on descriptors (vm/gilua_wait.c): the one interruptible wait.
** A deadline is a gilua_monotonic() time, or GILUA_FOREVER;
** gilua_deadline_after(timeout) is now + timeout (GILUA_FOREVER stays).
**
** gilua_waitfds polls 'fds' until one is ready, the deadline passes or a
** Ctrl-C is pending; called without the GIL, from any thread (even one
** without a state). Returns the count ready, 0 at the deadline, or -1
** with errno set: EINTR means Ctrl-C (then gilua_checkinterrupt once the
** GIL is back). A Ctrl-C that comes just before the wait is not lost: the
** main thread unblocks SIGINT only inside the wait (ppoll's mask).
** gilua_waitwith is the same loop around another waiting call: 'wait' is
** called as wait(ud, ms, mask) and must pass 'mask' (perhaps NULL: keep the
** thread's) on, as epoll_pwait takes it.
**
** gilua_poll does it holding the GIL: it releases the GIL while it waits
** (unless the deadline has passed), raises KeyboardInterrupt on Ctrl-C and
** OSError naming 'call' on failure, and returns the count ready or 0.
*/
/*
** TCP (vm/gilua_net.c), for asyncio and multiprocessing alike:
** gilua_resolve(L, host, port, passive) resolves without the GIL (NULL, or
** "" when passive, is every interface) and raises OSError on failure (free
** the list with freeaddrinfo); gilua_listen_tcp pushes fd, host, port of a
** listening socket on the first address that binds (SO_REUSEADDR,
** SOCK_CLOEXEC plus 'sockflags'), or raises OSError naming 'call';
** gilua_pushaddr pushes an address's numeric host and port (nil, nil if it
** is not IP): 2 results. gilua_checkport checks a port argument (0-65535).
*/
struct addrinfo;
struct sockaddr;
struct addrinfo *gilua_resolve(lua_State *L, const char *host, int port,
                               int passive);
int gilua_listen_tcp(lua_State *L, const char *host, int port, int backlog,
                     int sockflags, const char *call);
int gilua_pushaddr(lua_State *L, const struct sockaddr *sa, unsigned int len);
int gilua_checkport(lua_State *L, int arg, const char *fname);

struct pollfd;
double gilua_deadline_after(double timeout);
int gilua_waitfds(struct pollfd *fds, int n, double deadline);
typedef int (*gilua_waitfn)(void *ud, int ms, const sigset_t *mask);
int gilua_waitwith(gilua_waitfn wait, void *ud, double deadline);
int gilua_poll(lua_State *L, struct pollfd *fds, int n, double deadline,
               const char *call);

/* }================================================================== */


/* Embedded Lua sources and C modules (vm/gilua_modules.c): 'cmodules'
** are the C modules that `require` finds by name. */
void gilua_preload(lua_State *L, const luaL_Reg *cmodules);
int gilua_loadembedded(lua_State *L, const char *modname);
/* The runtime (the class model, the built-in exception classes;
** vm/gilua_error.c): loads it now if it is not yet (returns 1 then); or
** lets the interpreter load it at its first need. GIL held. */
int gilua_runtime(lua_State *L);
void gilua_lazyruntime(lua_State *L);

/* Lua's libraries as gilua changes them (vm/gilua_os.c, gilua_io.c,
** gilua_coroutine.c). */
void gilua_openos(lua_State *L);         /* os.execute, getpid, getppid, cpu_count */
void gilua_openio(lua_State *L);         /* GIL-releasing io */
void gilua_opencoroutine(lua_State *L);  /* tracking coroutine.resume/wrap */

#endif
