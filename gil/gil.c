/*
** gil.c: the Global Interpreter Lock.
**
** The protocol is CPython's since 3.2 ("new GIL"):
**
** - A thread that wants the GIL waits on 'cond' for at most the switch
**   interval. If the GIL is still held when the interval runs out, and it
**   has not changed hands meanwhile (switch_number is unchanged), the
**   waiter posts a drop request: it sets gil_drop_request and signals the
**   holder's OS thread (gil_signal.c), then waits again.
**
** - The holder notices the request at its next VM instruction (a one-shot
**   hook set by the signal handler) or at the next safe point in C, and
**   calls gil_yield: it releases the GIL and, because the drop was forced,
**   waits on 'switch_cond' until another thread has actually taken it
**   before queueing up again. Without that wait the holder, which is
**   already running, would usually win the race for the mutex against the
**   thread that was woken up, and a CPU-bound thread would starve the rest
**   ("forced switching").
**
** - Nothing of this costs anything while one thread runs: no hook is set
**   and no instruction is checked until a waiter posts a request.
**
** A voluntary release (around a blocking call) does not wait for anybody:
** the thread is about to block anyway.
**
** All the fields are protected by 'mutex'. 'holder' is also the
** last holder while the GIL is free, which is what forced switching looks
** at.
**
** Closing. gilua_close makes its thread the 'finalizer': from then on any
** other thread that wants the GIL (a daemon thread, a host thread still
** attached) parks on 'park_cond', which nobody signals, for good; CPython
** treats its daemon threads the same way at exit. Each thread state also
** carries the 'epoch' of the interpreter it was made for, so that a thread
** left over from a closed interpreter stays parked even after a new one
** has been opened. For the same reason the mutex and the condition
** variables are made once and never made again (except in a fork child,
** where the parked threads do not exist).
**
** Statistics and traces are kept here too, because every figure changes
** exactly where the lock changes hands, with the mutex already held: the
** counters, the per-thread hold and wait times, and (while a trace runs)
** one event appended to the thread's own buffer. The figures of threads
** that have finished are kept (up to MAXDEAD of them one by one, the rest
** summed up) so that a summary at exit still shows every thread.
*/
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gil.h"

#define MAXDEAD 1000

atomic_int gil_drop_request;

typedef struct dead {           /* a finished thread's figures */
  unsigned long seq;
  gilua_threadstats st;
} dead;

static struct {
  pthread_mutex_t mutex;
  pthread_cond_t cond;          /* the GIL was released */
  pthread_cond_t switch_cond;   /* the GIL was taken (after a forced drop) */
  pthread_cond_t park_cond;     /* never signalled: threads parked at close */
  int conds_made;
  int locked;
  atomic_int released;          /* 1 from give() to take(): read unlocked */
  int finalizing;               /* only 'finalizer' may take the GIL */
  unsigned epoch;               /* changes when an interpreter opens or closes */
  gilua_tstate *holder;         /* current holder, or last one if free */
  gilua_tstate *finalizer;
  gilua_tstate *threads;        /* every thread state, newest first */
  unsigned long switch_number;  /* times the GIL was taken */
  unsigned long seq;            /* thread states registered so far */
  unsigned long main_seq;       /* the main thread's */
  long interval_us;
  gilua_stats stats;
  double stats_since;
  /* finished threads: 'dead' in 'seq' order, then 'others' summed up */
  dead *dead;
  int ndead, deadsize;
  gilua_threadstats others;
  int nothers;
  /* tracing */
  int tracing;
  double trace_t0;
  gil_tbuf *trace_left;         /* buffers of the threads that left */
} gil = {
  .mutex = PTHREAD_MUTEX_INITIALIZER,
  .interval_us = 5000,
};

#define lock()    pthread_mutex_lock(&gil.mutex)
#define unlock()  pthread_mutex_unlock(&gil.mutex)


static double now (void) {
  return gilua_monotonic();
}


/*
** {======================================================
** Trace buffers (all under the mutex)
** =======================================================
*/

static gil_tbuf *tbuf_new (gilua_tstate *ts) {
  gil_tbuf *b = calloc(1, sizeof *b);
  if (b == NULL) return NULL;
  b->seq = ts->seq;
  b->tid = ts->native_id;
  return b;
}


/* The slow path: a first buffer or a full chunk. An event that finds no
** memory is counted and dropped; the trace goes on. */
static gil_event *grow (gilua_tstate *ts) {
  gil_tbuf *b = ts->trace;
  gil_chunk *c;
  int size;
  if (b == NULL && (b = ts->trace = tbuf_new(ts)) == NULL) return NULL;
  size = b->last ? 2 * b->last->size : GIL_CHUNK0;
  if (size > GIL_CHUNK) size = GIL_CHUNK;
  if ((c = malloc(sizeof *c + (size_t)size * sizeof(gil_event))) == NULL) {
    b->lost++;
    return NULL;
  }
  c->next = NULL;
  c->n = 0;
  c->size = size;
  if (b->last) b->last->next = c;
  else b->first = c;
  b->last = c;
  return &c->ev[c->n++];
}


/* Called only when gil.tracing is set: the flag is the whole cost of
** tracing while it is off. A thread of a closed interpreter records
** nothing: nobody would collect it. */
static void record (gilua_tstate *ts, int kind, double t, unsigned long arg) {
  gil_tbuf *b = ts->trace;
  gil_event *e;
  if (b != NULL && b->last != NULL && b->last->n < b->last->size)
    e = &b->last->ev[b->last->n++];
  else if ((e = grow(ts)) == NULL)
    return;
  e->t = t;
  e->kind = kind;
  e->arg = arg;
}

#define trace(ts,kind,t,arg)  \
  do { if (gil.tracing && (ts)->epoch == gil.epoch) \
         record(ts, kind, t, arg); } while (0)


/* The thread's buffer joins those of the threads that left. */
static void handover (gilua_tstate *ts) {
  gil_tbuf *b = ts->trace;
  if (b == NULL) return;
  snprintf(b->name, sizeof b->name, "%s", ts->name);
  b->next = gil.trace_left;
  gil.trace_left = b;
  ts->trace = NULL;
}


void gil_trace_free (gil_tbuf *b) {
  while (b) {
    gil_tbuf *next = b->next;
    gil_chunk *c = b->first;
    while (c) {
      gil_chunk *cn = c->next;
      free(c);
      c = cn;
    }
    free(b);
    b = next;
  }
}


int gil_trace_begin (void) {
  gilua_tstate *ts;
  double t = now();
  lock();
  if (gil.tracing) {
    unlock();
    return -1;
  }
  gil.tracing = 1;
  gil.trace_t0 = t;
  /* Every thread's lane starts in the state it is in right now. */
  for (ts = gil.threads; ts; ts = ts->next)
    record(ts, EV_STATE, t, (unsigned long)ts->gstate);
  unlock();
  return 0;
}


/* Sorts the list by 'seq' (insertion: a few threads, once per trace). */
static gil_tbuf *sortbufs (gil_tbuf *list) {
  gil_tbuf *sorted = NULL;
  while (list) {
    gil_tbuf *b = list, **p = &sorted;
    list = list->next;
    while (*p && (*p)->seq <= b->seq) p = &(*p)->next;
    b->next = *p;
    *p = b;
  }
  return sorted;
}


gil_tbuf *gil_trace_end (double *t0, double *t1) {
  gilua_tstate *ts;
  gil_tbuf *all;
  double t = now();
  lock();
  if (!gil.tracing) {
    unlock();
    return NULL;
  }
  for (ts = gil.threads; ts; ts = ts->next) {
    record(ts, EV_END, t, 0);
    handover(ts);
  }
  gil.tracing = 0;
  all = gil.trace_left;
  gil.trace_left = NULL;
  *t0 = gil.trace_t0;
  *t1 = t;
  unlock();
  return sortbufs(all);
}

/* }====================================================== */


/*
** {======================================================
** The lock
** =======================================================
*/

/* Threads of a closed (or closing) interpreter never run Lua again. */
#define parked(ts) \
  ((ts)->epoch != gil.epoch || (gil.finalizing && (ts) != gil.finalizer))


/* Called with the mutex held, once the GIL is free. 'start' is when the
** thread began to want it. */
static void take (gilua_tstate *ts, double start) {
  double t = now();
  if (gil.holder != ts && gil.holder != NULL) gil.stats.switches++;
  gil.locked = 1;
  atomic_store_explicit(&gil.released, 0, memory_order_relaxed);
  gil.holder = ts;
  gil.switch_number++;
  /* A request was for whoever held the GIL before: it is answered now. */
  atomic_store_explicit(&gil_drop_request, 0, memory_order_relaxed);
  ts->acquisitions++;
  ts->hold_since = t;
  ts->waited += t - start;
  ts->holds_gil = 1;
  ts->gstate = GIL_RUNNING;
  trace(ts, EV_TAKE, t, 0);
  pthread_cond_broadcast(&gil.switch_cond);
}


/* Returns the time of the release. */
static double give (gilua_tstate *ts, int why) {
  double t = now();
  ts->held += t - ts->hold_since;
  ts->holds_gil = 0;
  ts->gstate = (why == EV_REL_FORCED) ? GIL_WAITING : GIL_BLOCKED;
  gil.locked = 0;
  atomic_store_explicit(&gil.released, 1, memory_order_relaxed);
  trace(ts, why, t, 0);
  pthread_cond_signal(&gil.cond);
  return t;
}


/*
** A holder answers a drop request within microseconds (the signal, then its
** next call, return or loop back-edge). Were the waiter to go back to sleep
** on the condition variable meanwhile, its CPU would go idle, and waking an
** idle CPU, on a virtual machine above all, takes up to a millisecond or
** two: more than the switch itself, and paid at every forced switch. So
** after posting a request the waiter spins for a short while, mutex
** released, on the flag that give() sets, and only then sleeps again.
*/
#define SPIN_SECS 200e-6

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#else
#define cpu_relax() ((void)0)
#endif

static void spin_for_release (void) {
  double until = now() + SPIN_SECS;
  unlock();
  while (!atomic_load_explicit(&gil.released, memory_order_relaxed)
         && now() < until)
    cpu_relax();
  lock();
}


/* Waits for the GIL with the mutex held; 'start' as for take. */
static void acquire (gilua_tstate *ts, double start) {
  if (gil.locked || parked(ts)) {
    if (ts->gstate != GIL_WAITING) {
      ts->gstate = GIL_WAITING;
      trace(ts, EV_WANT, start, 0);
    }
  }
  while (gil.locked || parked(ts)) {
    unsigned long seen = gil.switch_number;
    struct timespec deadline;
    int rc;
    if (parked(ts)) {
      pthread_cond_wait(&gil.park_cond, &gil.mutex);
      continue;
    }
    gilua_deadline(&deadline, gil.interval_us / 1e6);
    rc = pthread_cond_timedwait(&gil.cond, &gil.mutex, &deadline);
    if (rc == ETIMEDOUT && gil.locked && gil.switch_number == seen
        && gil.holder != ts) {
      /* A whole interval and no switch: ask the holder to let go. The
      ** signal is repeated every interval for as long as nothing changes,
      ** in case a hook set by the user replaced ours. */
      if (!atomic_exchange_explicit(&gil_drop_request, 1,
                                    memory_order_relaxed)) {
        gil.stats.drop_requests++;
        ts->drops_requested++;
      }
      trace(ts, EV_DROP, now(), (unsigned long)gil.holder->native_id);
      gil_signal_post(gil.holder);
      spin_for_release();
    }
  }
  take(ts, start);
}


void gil_acquire (gilua_tstate *ts) {
  double start = now();
  lock();
  acquire(ts, start);
  unlock();
}


void gil_release (gilua_tstate *ts) {
  lock();
  give(ts, EV_REL_BLOCK);
  unlock();
}


void gil_yield (gilua_tstate *ts) {
  double t;
  lock();
  if (!atomic_load_explicit(&gil_drop_request, memory_order_relaxed)) {
    unlock();  /* somebody else answered it already */
    return;
  }
  gil.stats.forced_switches++;
  ts->drops_received++;
  t = give(ts, EV_REL_FORCED);
  /* Forced switching: do not queue up again before another thread has
  ** taken the GIL, or we would likely take it straight back. That wait is
  ** part of the time this thread waits for the GIL. */
  while (gil.holder == ts && !gil.finalizing)
    pthread_cond_wait(&gil.switch_cond, &gil.mutex);
  acquire(ts, t);
  unlock();
}

/* }====================================================== */


/*
** {======================================================
** Thread states and the interpreter's life
** =======================================================
*/

static void resetfigures (gilua_tstate *ts, double t) {
  ts->held = ts->waited = 0;
  ts->acquisitions = ts->drops_requested = ts->drops_received = 0;
  ts->hold_since = t;
}


static void cleardead (void) {
  free(gil.dead);
  gil.dead = NULL;
  gil.ndead = gil.deadsize = 0;
  memset(&gil.others, 0, sizeof gil.others);
  gil.nothers = 0;
}


void gil_init (gilua_tstate *ts) {
  lock();
  if (!gil.conds_made) {
    gilua_cond_init(&gil.cond);
    gilua_cond_init(&gil.switch_cond);
    gilua_cond_init(&gil.park_cond);
    gil.conds_made = 1;
  }
  gil.epoch++;
  gil.locked = 0;
  gil.finalizing = 0;
  gil.finalizer = NULL;
  gil.holder = NULL;
  gil.threads = NULL;
  memset(&gil.stats, 0, sizeof gil.stats);
  gil.stats_since = now();
  cleardead();
  gil.main_seq = gil.seq + 1;
  atomic_store(&gil_drop_request, 0);
  unlock();
  gil_signal_init();
  gil_register(ts);
  gil_acquire(ts);
}


void gil_register (gilua_tstate *ts) {
  lock();
  ts->epoch = gil.epoch;
  ts->seq = ++gil.seq;
  ts->gstate = GIL_BLOCKED;
  ts->trace = NULL;
  ts->prev = NULL;
  ts->next = gil.threads;
  if (gil.threads) gil.threads->prev = ts;
  gil.threads = ts;
  unlock();
}


static void fill (gilua_threadstats *st, gilua_tstate *ts, int alive) {
  snprintf(st->name, sizeof st->name, "%s", ts->name);
  st->ident = ts->ident;
  st->native_id = ts->native_id;
  st->alive = alive;
  st->hold_time = ts->held;
  st->wait_time = ts->waited;
  st->acquisitions = ts->acquisitions;
  st->drop_requests_made = ts->drops_requested;
  st->drop_requests_received = ts->drops_received;
}


static void addup (gilua_threadstats *sum, const gilua_threadstats *st) {
  sum->hold_time += st->hold_time;
  sum->wait_time += st->wait_time;
  sum->acquisitions += st->acquisitions;
  sum->drop_requests_made += st->drop_requests_made;
  sum->drop_requests_received += st->drop_requests_received;
}


/* Keeps a leaving thread's figures, in 'seq' order. When MAXDEAD are kept
** already, the oldest record other than the main thread's is summed up
** into 'others' to make room. */
static void bury (gilua_tstate *ts) {
  int i;
  if (gil.ndead == gil.deadsize && gil.ndead < MAXDEAD) {
    int n = gil.deadsize ? 2 * gil.deadsize : 16;
    dead *d = realloc(gil.dead, (size_t)n * sizeof *d);
    if (d != NULL) {
      gil.dead = d;
      gil.deadsize = n;
    }
  }
  if (gil.ndead == gil.deadsize) {  /* full (or no memory) */
    int victim = (gil.ndead > 1 && gil.dead[0].seq == gil.main_seq);
    if (gil.ndead == 0) {  /* no memory at all: sum this one up */
      gilua_threadstats st;
      fill(&st, ts, 0);
      addup(&gil.others, &st);
      gil.nothers++;
      return;
    }
    addup(&gil.others, &gil.dead[victim].st);
    gil.nothers++;
    memmove(&gil.dead[victim], &gil.dead[victim + 1],
            (size_t)(gil.ndead - victim - 1) * sizeof *gil.dead);
    gil.ndead--;
  }
  for (i = gil.ndead; i > 0 && gil.dead[i - 1].seq > ts->seq; i--)
    gil.dead[i] = gil.dead[i - 1];
  gil.dead[i].seq = ts->seq;
  fill(&gil.dead[i].st, ts, 0);
  gil.ndead++;
}


/* Takes 'ts' off the list of live threads (mutex held). */
static void unlink_ts (gilua_tstate *ts) {
  if (ts->prev) ts->prev->next = ts->next;
  else if (gil.threads == ts) gil.threads = ts->next;
  if (ts->next) ts->next->prev = ts->prev;
  ts->next = ts->prev = NULL;
}


void gil_exit (gilua_tstate *ts) {
  double t = now();
  lock();
  if (gil.locked && gil.holder == ts) {
    give(ts, EV_REL_EXIT);
    gil.holder = NULL;
  }
  else trace(ts, EV_REL_EXIT, t, 0);
  if (ts->epoch == gil.epoch) {  /* else gil_destroy took care of it */
    unlink_ts(ts);
    bury(ts);
    handover(ts);
  }
  if (gil.holder == ts) gil.holder = NULL;
  unlock();
}


void gil_finalize (gilua_tstate *ts) {
  lock();
  gil.finalizing = 1;
  gil.finalizer = ts;
  unlock();
}


/*
** The interpreter is gone. Threads still registered (parked daemons, host
** threads still attached) keep their state, which they never use again:
** their figures and events are kept as those of finished threads, and the
** new epoch tells gil_exit that they are off the list already.
*/
void gil_destroy (void) {
  gilua_tstate *ts;
  lock();
  for (ts = gil.threads; ts; ts = ts->next) {
    trace(ts, EV_REL_EXIT, now(), 0);
    bury(ts);
    handover(ts);
  }
  gil.threads = NULL;
  gil.holder = NULL;
  gil.epoch++;
  unlock();
}


/*
** In the child of fork() only the forking thread exists, and it held the
** GIL (it was running Lua). Anything the mutex protected may have been
** caught half-way by another thread of the parent, so all of it is made
** anew rather than trusted. A trace that was running belongs to the
** parent: the child stops recording and leaves the parent's events alone
** (their memory is lost to the child, which is cheaper than walking
** structures some other thread may have been changing).
*/
void gil_after_fork (gilua_tstate *ts) {
  pthread_mutex_init(&gil.mutex, NULL);
  gilua_cond_init(&gil.cond);
  gilua_cond_init(&gil.switch_cond);
  gilua_cond_init(&gil.park_cond);
  gil.threads = ts;
  ts->next = ts->prev = NULL;
  ts->thread = pthread_self();
  ts->trace = NULL;
  gil.tracing = 0;
  gil.trace_left = NULL;
  gil_trace_forget();
  gil.locked = 1;
  atomic_store(&gil.released, 0);
  gil.holder = ts;
  gil.finalizing = 0;
  atomic_store(&gil_drop_request, 0);
}

/* }====================================================== */


void gil_setinterval (double secs) {
  long us = (long)(secs * 1e6);
  lock();
  gil.interval_us = us < 1 ? 1 : us;
  unlock();
}


double gil_getinterval (void) {
  double s;
  lock();
  s = gil.interval_us / 1e6;
  unlock();
  return s;
}


/*
** {======================================================
** Statistics
** =======================================================
*/

static int nrecords (void) {
  int n = gil.ndead + (gil.nothers > 0);
  gilua_tstate *ts;
  for (ts = gil.threads; ts; ts = ts->next) n++;
  return n;
}


void gil_getstats (gilua_stats *st) {
  lock();
  *st = gil.stats;
  st->elapsed = now() - gil.stats_since;
  st->threads = nrecords();
  unlock();
}


/* Live threads and finished ones merged in 'seq' order (the live list is
** newest first: walk it from its tail). */
int gil_threadstats (gilua_threadstats *out, int max) {
  gilua_tstate *ts, *tail = NULL;
  int n = 0, d = 0;
  double t = now();
  lock();
  for (ts = gil.threads; ts; ts = ts->next) {
    tail = ts;
    if (ts == gil.holder && gil.locked) {  /* count the ongoing hold too */
      ts->held += t - ts->hold_since;
      ts->hold_since = t;
    }
  }
  ts = tail;
  while (ts != NULL || d < gil.ndead) {
    if (ts != NULL && (d == gil.ndead || ts->seq < gil.dead[d].seq)) {
      if (n < max) fill(&out[n], ts, 1);
      ts = ts->prev;
    }
    else if (n < max) out[n] = gil.dead[d++].st;
    else d++;
    n++;
  }
  if (gil.nothers > 0) {
    if (n < max) {
      out[n] = gil.others;
      snprintf(out[n].name, sizeof out[n].name, "(%d more finished threads)",
               gil.nothers);
    }
    n++;
  }
  unlock();
  return n;
}


void gil_resetstats (void) {
  gilua_tstate *ts;
  double t = now();
  lock();
  memset(&gil.stats, 0, sizeof gil.stats);
  gil.stats_since = t;
  cleardead();
  for (ts = gil.threads; ts; ts = ts->next) resetfigures(ts, t);
  unlock();
}


void gil_setname (gilua_tstate *ts, const char *name) {
  lock();
  snprintf(ts->name, sizeof ts->name, "%s", name);
  unlock();
}


/* The same for the running thread of ident 'ident' (a rename from another
** thread); 0 if no such thread runs. */
int gil_setname_ident (unsigned long ident, const char *name) {
  gilua_tstate *ts;
  int found = 0;
  lock();
  for (ts = gil.threads; ts; ts = ts->next)
    if (ts->ident == ident) {
      snprintf(ts->name, sizeof ts->name, "%s", name);
      found = 1;
      break;
    }
  unlock();
  return found;
}

/* }====================================================== */
