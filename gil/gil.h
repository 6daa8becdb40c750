/*
** gil.h: the Global Interpreter Lock as an object.
**
** The ground floor of libgilua: plain C and POSIX threads. Nothing here
** knows Lua, its thread states, modules or exceptions; what the GIL needs
** from the interpreter above it (stopping the holder's VM at its next
** instruction) it gets through a callback, gil_on_request.
**
** A gil_t is one lock with its switch interval, its policy, its statistics
** and its trace buffers. Every OS thread that takes it has a gil_thread,
** which the interpreter's thread state embeds. A policy (gil_policy)
** decides who may take the GIL, when a drop request is posted and what a
** holder does when asked to let go; the core (gil.c) does the bookkeeping
** that is the same for all of them: who holds it, figures, trace events.
*/
#ifndef gil_h
#define gil_h

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "gilua.h"

typedef struct gil_t gil_t;
typedef struct gil_thread gil_thread;
struct gil_tbuf;

enum {                          /* gil_thread.state, for traces */
  GIL_BLOCKED,      /* not holding and not wanting it: in a blocking call */
  GIL_WAITING,      /* wants the GIL */
  GIL_RUNNING       /* holds it */
};


/*
** What the GIL keeps per OS thread. The owner writes the fields under the
** GIL's mutex, except where marked; the signal handlers read the marked
** ones.
*/
struct gil_thread {
  gil_t *gil;                   /* the lock this thread takes */
  pthread_t thread;             /* read by waiters, to signal the holder */
  pid_t native_id;
  unsigned long ident;
  char name[64];                /* for statistics and traces */
  volatile sig_atomic_t holds;  /* holds the GIL; set by the owner only */
  volatile sig_atomic_t interrupt; /* Ctrl-C pending (gil_signal.c) */
  /* statistics */
  double hold_since, held, waited;
  unsigned long acquisitions, drops_requested, drops_received;
  /* bookkeeping of gil.c */
  int state;                    /* GIL_BLOCKED, GIL_WAITING, GIL_RUNNING */
  unsigned long seq;            /* registration order, for listings */
  unsigned epoch;               /* the opening of the GIL it belongs to */
  struct gil_tbuf *trace;       /* events being recorded, or NULL */
  gil_thread *next, *prev;      /* the GIL's live threads */
  /* the deterministic scheduler's view of the thread (gil_sched.c) */
  int sstate;                   /* SCHED_* */
  int stimedout;                /* its wait ended at its deadline */
  int slate;                    /* out for longer than the grace */
  const void *skey;             /* SCHED_BLOCKED: what it waits on */
  double sdeadline;             /* SCHED_BLOCKED: virtual time, < 0: none */
  unsigned long sorder;         /* SCHED_BLOCKED: when it began to wait */
  double outside_since;         /* SCHED_OUTSIDE: real time it went out */
  pthread_cond_t scond;         /* its turn came */
  /* what it waits on, for the deadlock report: written by the owner
  ** before it blocks */
  char swhat[96];
  unsigned long sowner;         /* ident of the thread it waits for, or 0 */
  const char *srole;            /* how: ", held by " (a lock), " " (join) */
};


/*
** A policy. Each hook is called with the GIL's mutex held.
** - wait: returns once 't' may take the GIL (the core takes it then), or
**   as soon as the policy changed or 't' must park (gil_waits_on says
**   when to go on waiting); 'why' says where the thread comes from
**   (GIL_FROM_*). The core calls the new policy's wait in the second case.
** - released: the holder has just let go (why: an EV_REL_* event).
** - yield: the holder 't' answers a drop request; it has let go already
**   and returns once it may queue up again.
** - tick (NULL for most): the holder has run check_interval VM
**   instructions and let go (gil_tick); the GIL is free until tick
**   returns, and the holder then takes it back unless another thread got
**   in. tick wakes whom it wants, and may release the mutex meanwhile. A
**   policy with a tick has its holder's VM counting instructions while
**   more than one thread exists ('ticking').
** - leave (may be NULL): the policy is being replaced: wake every thread
**   that sleeps somewhere only this policy signals (the core wakes those on
**   'cond' and 'switch_cond').
** - arrive, depart (may be NULL): 't' has registered (the first thread of
**   an opening too); 't' leaves without holding the GIL.
*/
enum { GIL_FROM_START, GIL_FROM_BLOCKING, GIL_FROM_YIELD, GIL_FROM_TICK };

typedef struct gil_policy {
  const char *name;
  void (*wait)(gil_t *g, gil_thread *t, int why);
  void (*released)(gil_t *g, gil_thread *t, int why);
  void (*yield)(gil_t *g, gil_thread *t);
  void (*tick)(gil_t *g, gil_thread *t);
  void (*leave)(gil_t *g);
  void (*arrive)(gil_t *g, gil_thread *t);
  void (*depart)(gil_t *g, gil_thread *t);
} gil_policy;

extern const gil_policy gil_policy_new;  /* CPython 3.2+ (gil_new.c) */
extern const gil_policy gil_policy_old;  /* CPython 3.1 and before (gil_old.c) */
extern const gil_policy gil_policy_io_priority;  /* bpo-7946 (gil_io_priority.c) */
extern const gil_policy gil_policy_fifo; /* arrival order (gil_fifo.c) */
extern const gil_policy gil_policy_sched; /* deterministic (gil_sched.c) */

/* The policies by name (gil_policy.c): NULL-terminated, the default first. */
extern const gil_policy *const gil_policies[];
const gil_policy *gil_findpolicy(const char *name);  /* NULL if none */

/* A waiter of the fifo policy: lives on the waiting thread's stack. */
typedef struct gil_waiter {
  pthread_cond_t cond;
  int queued;                   /* still in the queue */
  struct gil_waiter *next;
} gil_waiter;


typedef struct gil_dead {       /* a finished thread's figures */
  unsigned long seq;
  gilua_threadstats st;
} gil_dead;

struct gil_t {
  pthread_mutex_t mutex;
  pthread_cond_t cond;          /* the GIL was released */
  pthread_cond_t switch_cond;   /* the GIL was taken (after a forced drop) */
  pthread_cond_t park_cond;     /* never signalled: threads parked at close */
  const gil_policy *policy;
  unsigned policy_gen;          /* changes at each change of policy */
  /* Set by a waiter that wants the holder to let go; cleared by whoever
  ** takes the GIL next. The holder reads it at safe points: a relaxed
  ** load, nothing more. */
  atomic_int drop_request;
  atomic_int released;          /* 1 from give() to take(): read unlocked */
  int locked;
  int wake_owed;                /* signal 'cond' once the mutex is let go */
  int finalizing;               /* only 'finalizer' may take the GIL */
  unsigned epoch;               /* changes at each opening and closing */
  gil_thread *holder;           /* current holder, or last one if free */
  double taken_at;              /* when the holder took it */
  gil_thread *finalizer;
  gil_thread *threads;          /* live threads, newest first */
  unsigned long switch_number;  /* times the GIL was taken */
  unsigned long seq;            /* threads registered so far */
  unsigned long main_seq;       /* the first thread of this opening */
  long interval_us;
  int nthreads;                 /* live threads of this opening */
  /* 1 while the policy has a tick and more than one thread exists: the
  ** layer above then has its VM call gil_tick every 'check_interval'
  ** instructions. Written under the mutex, read anywhere. */
  atomic_int ticking;
  atomic_int check_interval;
  /* the policies' own state */
  gil_waiter *queue, *queue_tail;  /* fifo: waiters in arrival order */
  int nprio;                    /* io-priority: waiters back from a block */
  struct gil_sched *sched;      /* the deterministic scheduler, once used */
  atomic_int sched_on;          /* it is the policy: written under the
                                ** mutex, read anywhere */
  gilua_stats stats;
  double stats_since;
  /* finished threads: 'dead' in 'seq' order (a ring of 'deadsize' records
  ** from 'deadhead'), then 'others' summed up */
  gil_dead *dead;
  int ndead, deadsize, deadhead;
  gilua_threadstats others;
  int nothers;
  /* tracing */
  int tracing;
  double trace_t0;
  struct gil_tbuf *trace_left;  /* buffers of the threads that left */
  const gil_policy *trace_policy;  /* the policy when the trace began */
  /* the trace's output file (gil_trace.c), under its own lock */
  pthread_mutex_t out_lock;
  FILE *out_file;
  char *out_path;
  int out_html;
};

/* For policies' 'released': wake one waiter on 'cond' right after the
** mutex is let go (mutex held). The waiter, woken while the releaser still
** held the mutex, would at once sleep again on the mutex itself: one
** context switch more at every hand-over. */
#define gil_owe_wake(g)  ((g)->wake_owed = 1)

#define gil_drop_requested(g) \
  atomic_load_explicit(&(g)->drop_request, memory_order_relaxed)
#define gil_ticking(g) \
  atomic_load_explicit(&(g)->ticking, memory_order_relaxed)
#define gil_checkinterval(g) \
  atomic_load_explicit(&(g)->check_interval, memory_order_relaxed)


/*
** {======================================================
** The lock (gil.c)
** =======================================================
*/

/* Makes 'g' with a policy (once per object; it is never destroyed, see
** gil.c). */
void gil_init(gil_t *g, const gil_policy *policy);
/* A new opening: forgets the threads of the last one, which stay parked,
** registers 't' and gives it the GIL. */
void gil_open(gil_t *g, gil_thread *t);
void gil_thread_init(gil_thread *t, gil_t *g);  /* the caller's */
void gil_register(gil_thread *t);
void gil_acquire(gil_thread *t);
void gil_release(gil_thread *t);   /* around a blocking call */
void gil_yield(gil_thread *t);     /* answer a drop request */
/* The holder 't' has run check_interval VM instructions (only while
** 'ticking'): lets go and at once tries to take the GIL back. Returns 1
** if another thread had it meanwhile. */
int gil_tick(gil_thread *t);
/* The thread leaves: releases the GIL if it holds it, keeps its figures
** among the finished threads' and hands its trace events over. */
void gil_exit(gil_thread *t);
/* 't' is closing the interpreter: no other thread takes the GIL again. */
void gil_finalize(gil_thread *t);
void gil_close(gil_t *g);          /* after the finalizer's exit */
void gil_after_fork(gil_thread *t); /* in the child: 't' is alone */

void gil_setinterval(gil_t *g, double secs);
double gil_getinterval(gil_t *g);
void gil_setcheckinterval(gil_t *g, int n);  /* n >= 1 */
/* Replaces the policy, threads running and waiting or not: every waiter
** wakes and goes on waiting under the new one. */
void gil_setpolicy(gil_t *g, const gil_policy *p);
const gil_policy *gil_getpolicy(gil_t *g);
void gil_setname(gil_thread *t, const char *name);
int gil_setname_ident(gil_t *g, unsigned long ident, const char *name);

/* For policies: post a drop request to the holder (mutex held). */
void gil_request_drop(gil_t *g, gil_thread *from);
/* For policies: whether 't' belongs to a closed (or closing) interpreter
** and must park for good on 'park_cond' (mutex held). */
int gil_parked(gil_t *g, gil_thread *t);
/* For policies: whether 't', which entered a wait while the policy
** generation was 'gen', waits on under it: the policy is still the same
** and 't' need not park (mutex held). */
#define gil_waits_on(g,t,gen)  ((g)->policy_gen == (gen) && !gil_parked(g, t))
/* For policies: 't' is about to wait while the GIL is free (its turn has
** not come): marks it waiting in traces. */
void gil_want(gil_t *g, gil_thread *t);

/* gil_new.c, for the policies built on new's protocol (mutex held):
** - gil_ask_drop: posts a drop request for 't' and spins a short while
**   (mutex released) for the holder to let go;
** - gil_wait_step: sleeps on 'cond' for at most 'secs' (new: one switch
**   interval); if that ran out and the GIL did not change hands
**   meanwhile, gil_ask_drop;
** - gil_wait_taken: forced switching, new's yield: returns once another
**   thread has taken the GIL (or the policy changed). */
void gil_ask_drop(gil_t *g, gil_thread *t);
void gil_wait_step(gil_t *g, gil_thread *t, pthread_cond_t *cond,
                   double secs);
void gil_wait_taken(gil_t *g, gil_thread *t);

/* Statistics. gil_threadstats fills up to 'max' records, oldest thread
** first, and returns how many there are. */
void gil_getstats(gil_t *g, gilua_stats *st);
int gil_threadstats(gil_t *g, gilua_threadstats *out, int max);
void gil_resetstats(gil_t *g);

/* }====================================================== */


/*
** {======================================================
** Tracing (recording in gil.c, writing in gil_trace.c)
** =======================================================
*/

/*
** While a trace runs, every thread owns a buffer of raw events, appended
** to by its owner under the GIL mutex (which the GIL's code holds at those
** moments anyway), so recording costs no extra lock and no formatting.
** gil_trace_end takes every buffer back, those of the threads that left
** meanwhile included, and gil_trace.c turns them into Chrome trace-event
** JSON.
*/
enum {
  EV_STATE,         /* the trace starts; arg: the thread's state */
  EV_WANT,          /* starts waiting for the GIL */
  EV_TAKE,          /* takes the GIL */
  EV_REL_BLOCK,     /* releases it around a blocking call */
  EV_REL_FORCED,    /* lets go because of a drop request */
  EV_REL_EXIT,      /* leaves (thread end, interpreter closed) */
  EV_DROP,          /* posts a drop request; arg: the holder's native id */
  EV_END,           /* the trace stops */
  EV_REL_TICK,      /* lets go at a check interval, and another took it */
  EV_POLICY         /* changes the policy; arg: its index in gil_policies */
};

typedef struct gil_event {
  double t;                     /* CLOCK_MONOTONIC, seconds */
  unsigned long arg;
  int kind;
} gil_event;

/* A thread's first chunk is small (a trace may see thousands of short-lived
** threads), the next ones twice as big, up to GIL_CHUNK events. */
#define GIL_CHUNK0 32
#define GIL_CHUNK 4096

typedef struct gil_chunk {
  struct gil_chunk *next;
  int n, size;
  gil_event ev[];
} gil_chunk;

typedef struct gil_tbuf {       /* one thread's events */
  gil_chunk *first, *last;
  unsigned long seq;            /* the thread's registration order */
  long tid;                     /* native id */
  unsigned long lost;           /* events dropped for lack of memory */
  char name[64];                /* filled when the buffer is handed over */
  struct gil_tbuf *next;
} gil_tbuf;

int gil_trace_begin(gil_t *g);  /* -1 if a trace runs already */
/* Stops recording and returns every buffer, oldest thread first (NULL if
** no trace was running); the caller frees them with gil_trace_free. */
gil_tbuf *gil_trace_end(gil_t *g, double *t0, double *t1);
void gil_trace_free(gil_tbuf *b);

/* gil_trace.c: the file side. Same contracts as gilua_trace_start,
** gilua_trace_stop and gilua_printstats in gilua.h. The file is g's; a
** trace may also hold the events of other GILs (other interpreters):
** gil_trace_stop writes g's events (the group 'name', id 0) and then the
** 'more' groups, and frees their buffers. */
typedef struct gil_tgroup {     /* one GIL's events */
  int id;                       /* > 0, distinct */
  char name[64];
  gil_tbuf *bufs;
  double interval;              /* its switch interval, its policy (when */
  const char *policy;           /* the trace began) and check interval */
  int check_interval;
} gil_tgroup;

int gil_trace_start(gil_t *g, const char *path);
int gil_trace_stop(gil_t *g, const char *name, gil_tgroup *more, int nmore);
char *gil_trace_path(gil_t *g);  /* a copy, or NULL */
void gil_printstats(gil_t *g, FILE *out);
/* The same table from figures taken before (those of a GIL gone since). */
void gil_printfigures(FILE *out, const gilua_stats *st,
                      const gilua_threadstats *ts, int n, double interval,
                      const gil_policy *policy, int check_interval);

/* }====================================================== */


/*
** {======================================================
** The deterministic scheduler (gil_sched.c)
** =======================================================
*/

enum {                          /* gil_thread.sstate */
  SCHED_RUN,        /* holds the GIL, or the scheduler has not seen it */
  SCHED_READY,      /* may be given the GIL */
  SCHED_BLOCKED,    /* waits for a wake-up or a virtual deadline (gil_block) */
  SCHED_OUTSIDE,    /* in a blocking call the scheduler does not know */
  SCHED_GONE        /* leaving */
};

typedef struct gil_sched {
  unsigned long long seed, rng;
  double vnow;                  /* the virtual clock, seconds */
  gil_thread *turn;             /* whom the GIL goes to next, or NULL */
  gil_thread *keeper;           /* wakes when the grace runs out */
  double grace_until;           /* real time (gil_monotonic), 0: none */
  gil_thread *starter;          /* waits for 'expect' threads to register */
  gil_thread *yielder;          /* at a point: not drawn if another can be */
  int expect;
  int nondet;                   /* determinism lost (said once) */
  unsigned long blockseq;
  atomic_int tick;              /* instructions to the next preemption */
  const gil_policy *before;     /* the policy to give back */
} gil_sched;

#define gil_sched_on(g) \
  atomic_load_explicit(&(g)->sched_on, memory_order_relaxed)
/* The VM's instructions between two checks: the scheduler's draw, or
** check_interval. */
#define gil_tickperiod(g)  (gil_sched_on(g) ? \
  atomic_load_explicit(&(g)->sched->tick, memory_order_relaxed) : \
  gil_checkinterval(g))

/* Turns the scheduler on with 'seed' (0, or EBUSY if 'g' has more than
** one thread), or off (0). The caller holds the GIL. */
int gil_sched_start(gil_t *g, unsigned long long seed);
void gil_sched_stop(gil_t *g);
/* The seed, if on (returns 0 if off). */
int gil_sched_seed(gil_t *g, unsigned long long *seed);
double gil_sched_now(gil_t *g);   /* the virtual clock */
void gil_sched_pass(gil_t *g, double secs);  /* moves it on */
/* The holder 't' waits, under the scheduler, until gil_sched_wake(key)
** or until the virtual time 'until' (< 0: none); returns 0 if the time
** ran out. The GIL goes where the scheduler draws meanwhile. */
int gil_block(gil_thread *t, const void *key, double until);
/* Makes the threads that wait on 'key' runnable: all, or the one that
** waits longest (GIL held). */
void gil_sched_wake(gil_t *g, const void *key, int all);
/* The holder 't' has just taken a lock: a preemption point, now and then
** (as the draw says). Returns 1 if another thread ran meanwhile. */
int gil_sched_point(gil_thread *t);
/* The holder is about to start a thread: its registration will be waited
** for (gil_sched_await), so that it joins the others at a point the
** program decides, not the OS. gil_sched_unexpect if it was not made. */
void gil_sched_expect(gil_thread *t);
void gil_sched_unexpect(gil_t *g);
void gil_sched_await(gil_thread *t);
/* Says once, on stderr, that this run no longer replays, and why. */
void gil_sched_nondet(gil_t *g, const char *why);
/* What the layer above prints when every thread waits and nothing can
** wake one: called with the mutex held, every other thread stopped; the
** process then exits with GILUA_EXIT_DEADLOCK. */
typedef void (*gil_deadlock_fn)(gil_t *g);
void gil_sched_ondeadlock(gil_deadlock_fn fn);

/* }====================================================== */


/*
** {======================================================
** Clocks and deadlines (gil_time.c)
** =======================================================
*/

double gil_monotonic(void);
/* An absolute CLOCK_MONOTONIC deadline 'secs' from now (capped at 1e9 s),
** for timed waits on condition variables made with gil_cond_init. */
void gil_deadline(struct timespec *ts, double secs);
void gil_cond_init(pthread_cond_t *c);

/* }====================================================== */


/*
** {======================================================
** Signals: drop requests and Ctrl-C (gil_signal.c)
** =======================================================
*/

/* The calling thread's record, or NULL. initial-exec: the signal handlers
** read it, and must not allocate. */
extern __thread gil_thread *gil_self_
  __attribute__((tls_model("initial-exec")));
#define gil_self()      (gil_self_)
#define gil_setself(t)  (gil_self_ = (t))

/* Called by the signal handlers on the thread 't' itself, with the GIL
** held by 't', when a drop request or a Ctrl-C is pending for it: the
** interpreter above arms whatever makes its VM stop at the next
** instruction and call gil_yield or check for the interrupt there. Must be
** async-signal-safe. Set once, before the first gil_open. */
typedef void (*gil_request_fn)(gil_thread *t);
void gil_on_request(gil_request_fn fn);

void gil_signal_init(void);  /* in the main thread */
/* Ask the holder's OS thread to look at its requests. */
void gil_signal_post(gil_thread *holder);

/* Ctrl-C. With 'on', SIGINT marks the main thread interrupted (and wakes
** its sliced waits); with 0, SIGINT gets its default action back. */
void gil_sigint(int on);
int gil_sigint_on(void);
void gil_setinterrupt(void);     /* as if SIGINT came */
/* Takes the calling thread's pending Ctrl-C: 1 if there was one. */
int gil_interrupt_take(void);
int gil_interrupt_pending(void);

/* pthread_cond_wait with an optional deadline (NULL: for ever), that the
** main thread leaves on Ctrl-C. Returns 0 (woken, perhaps spuriously),
** ETIMEDOUT or EINTR (Ctrl-C pending). */
int gil_condwait(pthread_cond_t *c, pthread_mutex_t *m,
                 const struct timespec *deadline);
/* Sleeps 'secs' (the GIL released), restarting after signals; returns 1
** if cut short by Ctrl-C. */
int gil_nap(double secs);

/* }====================================================== */

#endif
