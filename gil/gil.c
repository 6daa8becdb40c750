/*
** gil.c: the Global Interpreter Lock's core: who holds it, the threads
** that take it, figures and trace events. When a thread may take the GIL,
** and what a holder does when asked to let go, is the policy's to decide
** (gil_new.c: CPython 3.2+'s protocol); the core calls the policy at three
** points, with the mutex held:
**
**   gil_acquire   -> policy->wait      until the thread may take it; take()
**   gil_release   -> give(); policy->released
**   gil_yield     -> give(); policy->released; policy->yield; then as
**                    gil_acquire
**   gil_tick      -> policy->tick; if it says so, let go and take back
**
** The policy may change at any time (gil_setpolicy): every waiter is woken,
** leaves the old policy's wait and enters the new one's. A policy with a
** tick (old) needs the VM to count instructions, which costs; 'ticking'
** tells the layer above when: only while such a policy is on and more than
** one thread exists.
**
** A drop request is posted by a waiter (gil_request_drop: the flag, then a
** signal to the holder's OS thread, gil_signal.c); the holder notices it
** at its next VM instruction, through the hook the layer above arms when
** the signal arrives, or at the next safe point in C, and calls gil_yield.
** Nothing of this costs anything while one thread runs: no hook is set and
** no instruction is checked until a request is posted.
**
** All the fields are protected by 'mutex'. 'holder' is also the
** last holder while the GIL is free, which is what forced switching looks
** at.
**
** Closing. The interpreter's closing thread becomes the 'finalizer': from
** then on any other thread that wants the GIL (a daemon thread, a host
** thread still attached) parks on 'park_cond', which nobody signals, for
** good; CPython treats its daemon threads the same way at exit. Each
** thread also carries the 'epoch' of the opening it was registered in, so
** that a thread left over from a closed interpreter stays parked even
** after the GIL has been opened again. For the same reason a gil_t is made
** once and never destroyed, and its mutex and condition variables are
** never made again (except in a fork child, where the parked threads do
** not exist).
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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gil.h"

#define MAXDEAD 1000

#define lock(g)    pthread_mutex_lock(&(g)->mutex)
#define unlock(g)  pthread_mutex_unlock(&(g)->mutex)

#define now()      gil_monotonic()


/*
** {======================================================
** Trace buffers (all under the mutex)
** =======================================================
*/

static gil_tbuf *tbuf_new (gil_thread *t) {
  gil_tbuf *b = calloc(1, sizeof *b);
  if (b == NULL) return NULL;
  b->seq = t->seq;
  b->tid = t->native_id;
  return b;
}


/* The slow path: a first buffer or a full chunk. An event that finds no
** memory is counted and dropped; the trace goes on. */
static gil_event *grow (gil_thread *t) {
  gil_tbuf *b = t->trace;
  gil_chunk *c;
  int size;
  if (b == NULL && (b = t->trace = tbuf_new(t)) == NULL) return NULL;
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


/* Called only when the GIL is tracing: the flag is the whole cost of
** tracing while it is off. */
static void record (gil_thread *t, int kind, double when, unsigned long arg) {
  gil_tbuf *b = t->trace;
  gil_event *e;
  if (b != NULL && b->last != NULL && b->last->n < b->last->size)
    e = &b->last->ev[b->last->n++];
  else if ((e = grow(t)) == NULL)
    return;
  e->t = when;
  e->kind = kind;
  e->arg = arg;
}

/* A thread of a closed interpreter records nothing: nobody would collect
** it. */
#define trace(g,t,kind,when,arg)  \
  do { if ((g)->tracing && (t)->epoch == (g)->epoch) \
         record(t, kind, when, arg); } while (0)


/* The thread's buffer joins those of the threads that left. */
static void handover (gil_t *g, gil_thread *t) {
  gil_tbuf *b = t->trace;
  if (b == NULL) return;
  snprintf(b->name, sizeof b->name, "%s", t->name);
  b->next = g->trace_left;
  g->trace_left = b;
  t->trace = NULL;
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


int gil_trace_begin (gil_t *g) {
  gil_thread *t;
  double when = now();
  lock(g);
  if (g->tracing) {
    unlock(g);
    return -1;
  }
  g->tracing = 1;
  g->trace_t0 = when;
  g->trace_policy = g->policy;
  /* Every thread's lane starts in the state it is in right now. */
  for (t = g->threads; t; t = t->next)
    record(t, EV_STATE, when, (unsigned long)t->state);
  unlock(g);
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


gil_tbuf *gil_trace_end (gil_t *g, double *t0, double *t1) {
  gil_thread *t;
  gil_tbuf *all;
  double when = now();
  lock(g);
  if (!g->tracing) {
    unlock(g);
    return NULL;
  }
  for (t = g->threads; t; t = t->next) {
    record(t, EV_END, when, 0);
    handover(g, t);
  }
  g->tracing = 0;
  all = g->trace_left;
  g->trace_left = NULL;
  *t0 = g->trace_t0;
  *t1 = when;
  unlock(g);
  return sortbufs(all);
}

/* }====================================================== */


/*
** {======================================================
** The lock
** =======================================================
*/

/* Threads of a closed (or closing) interpreter never run Lua again. */
int gil_parked (gil_t *g, gil_thread *t) {
  return t->epoch != g->epoch || (g->finalizing && t != g->finalizer);
}


/* Called with the mutex held, once the policy let 't' through. 'start' is
** when the thread began to want the GIL. */
static void take (gil_t *g, gil_thread *t, double start) {
  double when = now();
  if (g->holder != t && g->holder != NULL) g->stats.switches++;
  g->locked = 1;
  atomic_store_explicit(&g->released, 0, memory_order_relaxed);
  g->holder = t;
  g->taken_at = when;
  g->switch_number++;
  /* A request was for whoever held the GIL before: it is answered now. */
  atomic_store_explicit(&g->drop_request, 0, memory_order_relaxed);
  t->acquisitions++;
  t->hold_since = when;
  t->waited += when - start;
  t->holds = 1;
  t->state = GIL_RUNNING;
  trace(g, t, EV_TAKE, when, 0);
  pthread_cond_broadcast(&g->switch_cond);
}


/* Returns the time of the release. */
static double give (gil_t *g, gil_thread *t, int why) {
  double when = now();
  t->held += when - t->hold_since;
  t->holds = 0;
  t->state = (why == EV_REL_FORCED) ? GIL_WAITING : GIL_BLOCKED;
  g->locked = 0;
  atomic_store_explicit(&g->released, 1, memory_order_relaxed);
  trace(g, t, why, when, 0);
  g->policy->released(g, t, why);
  return when;
}


void gil_want (gil_t *g, gil_thread *t) {
  if (t->state != GIL_WAITING) {
    t->state = GIL_WAITING;
    trace(g, t, EV_WANT, now(), 0);
  }
}


/* Waits for the GIL with the mutex held; 'start' as for take. A wait that
** the policy left because the policy changed starts over under the new
** one. */
static void acquire (gil_t *g, gil_thread *t, double start, int why) {
  if ((g->locked || gil_parked(g, t)) && t->state != GIL_WAITING) {
    t->state = GIL_WAITING;
    trace(g, t, EV_WANT, start, 0);
  }
  for (;;) {
    unsigned gen = g->policy_gen;
    while (gil_parked(g, t))  /* for good */
      pthread_cond_wait(&g->park_cond, &g->mutex);
    g->policy->wait(g, t, why);
    if (gil_waits_on(g, t, gen)) break;
  }
  take(g, t, start);
}


/* 'ticking' follows the policy and the number of threads (mutex held).
** When it turns on, the holder, which may run Lua for long, is told at
** once through the request callback; the other threads see it when they
** get the GIL back. When it turns off, the layer above stops counting the
** next time it looks. */
static void set_ticking (gil_t *g) {
  int on = g->policy->tick != NULL && g->nthreads > 1;
  if (on == gil_ticking(g)) return;
  atomic_store_explicit(&g->ticking, on, memory_order_relaxed);
  if (on && g->locked && g->holder != NULL && g->holder != gil_self())
    gil_signal_post(g->holder);
}


void gil_request_drop (gil_t *g, gil_thread *from) {
  /* The signal is repeated at every request for as long as nothing
  ** changes, in case a hook set by the user replaced the one it arms. */
  if (!atomic_exchange_explicit(&g->drop_request, 1, memory_order_relaxed)) {
    g->stats.drop_requests++;
    from->drops_requested++;
  }
  trace(g, from, EV_DROP, now(), (unsigned long)g->holder->native_id);
  gil_signal_post(g->holder);
}


void gil_acquire (gil_thread *t) {
  gil_t *g = t->gil;
  double start = now();
  lock(g);
  acquire(g, t, start, GIL_FROM_BLOCKING);
  unlock(g);
}


/* Lets go of the mutex, then signals 'cond' if the policy asked for it
** (gil_owe_wake). */
static void unlock_and_wake (gil_t *g) {
  int owed = g->wake_owed;
  g->wake_owed = 0;
  unlock(g);
  if (owed) pthread_cond_signal(&g->cond);
}


void gil_release (gil_thread *t) {
  gil_t *g = t->gil;
  lock(g);
  give(g, t, EV_REL_BLOCK);
  unlock_and_wake(g);
}


void gil_yield (gil_thread *t) {
  gil_t *g = t->gil;
  double when;
  lock(g);
  if (!gil_drop_requested(g)) {
    unlock(g);  /* somebody else answered it already */
    return;
  }
  g->stats.forced_switches++;
  t->drops_received++;
  when = give(g, t, EV_REL_FORCED);
  g->policy->yield(g, t);
  acquire(g, t, when, GIL_FROM_YIELD);
  unlock(g);
}


/*
** A check interval: the holder lets go and at once tries to take the GIL
** back, as CPython did before 3.2 (release, then acquire). In between
** (policy->tick) the GIL is free, and a waiter may get in; most of the
** time the holder wins, being on a CPU already. That release costs no
** trace event and no figure: it happens a million times a second, and
** only one where another thread got in is a switch worth recording.
*/
int gil_tick (gil_thread *t) {
  gil_t *g = t->gil;
  unsigned long seen;
  double when;
  lock(g);
  if (!g->locked || g->holder != t || g->policy->tick == NULL) {
    unlock(g);
    return 0;
  }
  when = now();
  seen = g->switch_number;
  t->holds = 0;
  t->state = GIL_WAITING;
  g->locked = 0;
  atomic_store_explicit(&g->released, 1, memory_order_relaxed);
  g->policy->tick(g, t);
  if (g->switch_number == seen && g->policy->tick != NULL &&
      !gil_parked(g, t)) {  /* nobody got in: the GIL is ours again */
    g->locked = 1;
    atomic_store_explicit(&g->released, 0, memory_order_relaxed);
    t->holds = 1;
    t->state = GIL_RUNNING;
    unlock(g);
    return 0;
  }
  t->held += when - t->hold_since;
  trace(g, t, EV_REL_TICK, when, 0);
  acquire(g, t, when, GIL_FROM_TICK);
  unlock(g);
  return 1;
}


/*
** A wait the scheduler knows (gil_sched.c): the holder lets go as around
** a blocking call, but as BLOCKED on 'key', and the policy gives the GIL
** back when a wake-up or the virtual clock made it READY and the draw
** fell on it. A deadline already reached leaves it READY: still a point
** where another thread may be drawn.
*/
int gil_block (gil_thread *t, const void *key, double until) {
  gil_t *g = t->gil;
  gil_sched *s = g->sched;
  double when;
  int timedout;
  lock(g);
  t->sstate = SCHED_BLOCKED;
  t->skey = key;
  t->sdeadline = until;
  t->sorder = ++s->blockseq;
  t->stimedout = 0;
  if (until >= 0 && until <= s->vnow) {
    t->sstate = SCHED_READY;
    t->stimedout = 1;
  }
  when = give(g, t, EV_REL_BLOCK);
  acquire(g, t, when, GIL_FROM_BLOCKING);
  timedout = t->stimedout;
  t->skey = NULL;
  t->swhat[0] = '\0';
  t->sowner = 0;
  unlock_and_wake(g);
  return !timedout;
}

/* }====================================================== */


/*
** {======================================================
** Threads and the interpreter's life
** =======================================================
*/

static void resetfigures (gil_thread *t, double when) {
  t->held = t->waited = 0;
  t->acquisitions = t->drops_requested = t->drops_received = 0;
  t->hold_since = when;
}


static void cleardead (gil_t *g) {
  free(g->dead);
  g->dead = NULL;
  g->ndead = g->deadsize = g->deadhead = 0;
  memset(&g->others, 0, sizeof g->others);
  g->nothers = 0;
}


static void make_sync (gil_t *g) {
  pthread_mutex_init(&g->mutex, NULL);
  gil_cond_init(&g->cond);
  gil_cond_init(&g->switch_cond);
  gil_cond_init(&g->park_cond);
  pthread_mutex_init(&g->out_lock, NULL);
}


void gil_init (gil_t *g, const gil_policy *policy) {
  memset(g, 0, sizeof *g);
  make_sync(g);
  g->policy = policy;
  g->interval_us = 5000;
  atomic_store(&g->check_interval, 100);
}


void gil_thread_init (gil_thread *t, gil_t *g) {
  memset(t, 0, sizeof *t);
  t->gil = g;
  gil_cond_init(&t->scond);
}


void gil_open (gil_t *g, gil_thread *t) {
  lock(g);
  g->epoch++;
  g->locked = 0;
  g->finalizing = 0;
  g->finalizer = NULL;
  g->holder = NULL;
  g->threads = NULL;
  g->nthreads = 0;
  g->queue = g->queue_tail = NULL;
  g->nprio = 0;
  set_ticking(g);
  memset(&g->stats, 0, sizeof g->stats);
  g->stats_since = now();
  cleardead(g);
  g->main_seq = g->seq + 1;
  atomic_store(&g->drop_request, 0);
  unlock(g);
  gil_register(t);
  lock(g);
  acquire(g, t, now(), GIL_FROM_START);
  unlock(g);
}


void gil_register (gil_thread *t) {
  gil_t *g = t->gil;
  lock(g);
  t->epoch = g->epoch;
  t->seq = ++g->seq;
  t->state = GIL_BLOCKED;
  t->trace = NULL;
  t->prev = NULL;
  t->next = g->threads;
  if (g->threads) g->threads->prev = t;
  g->threads = t;
  g->nthreads++;
  set_ticking(g);
  if (g->policy->arrive) g->policy->arrive(g, t);
  unlock(g);
}


static void fill (gilua_threadstats *st, gil_thread *t, int alive) {
  snprintf(st->name, sizeof st->name, "%s", t->name);
  st->ident = t->ident;
  st->native_id = t->native_id;
  st->alive = alive;
  st->hold_time = t->held;
  st->wait_time = t->waited;
  st->acquisitions = t->acquisitions;
  st->drop_requests_made = t->drops_requested;
  st->drop_requests_received = t->drops_received;
}


static void addup (gilua_threadstats *sum, const gilua_threadstats *st) {
  sum->hold_time += st->hold_time;
  sum->wait_time += st->wait_time;
  sum->acquisitions += st->acquisitions;
  sum->drop_requests_made += st->drop_requests_made;
  sum->drop_requests_received += st->drop_requests_received;
}


/* The i-th oldest record of a finished thread. */
#define DEAD(g,i)  ((g)->dead[((g)->deadhead + (i)) % (g)->deadsize])

/* Makes room for more records: a bigger ring, oldest record first. */
static void growdead (gil_t *g) {
  int n = g->deadsize ? 2 * g->deadsize : 16, i;
  gil_dead *d;
  if (n > MAXDEAD) n = MAXDEAD;
  if ((d = malloc((size_t)n * sizeof *d)) == NULL) return;
  for (i = 0; i < g->ndead; i++) d[i] = DEAD(g, i);
  free(g->dead);
  g->dead = d;
  g->deadsize = n;
  g->deadhead = 0;
}


/* Keeps a leaving thread's figures, in 'seq' order. When MAXDEAD are kept
** already, the oldest record other than the main thread's is summed up
** into 'others' to make room: the records are a ring, so that costs the
** same whatever the count (a program that starts thousands of threads
** pays it at every thread's end). */
static void bury (gil_t *g, gil_thread *t) {
  int i;
  if (g->ndead == g->deadsize && g->ndead < MAXDEAD) growdead(g);
  if (g->ndead == g->deadsize) {  /* full (or no memory) */
    int victim;
    if (g->ndead == 0) {  /* no memory at all: sum this one up */
      gilua_threadstats st;
      fill(&st, t, 0);
      addup(&g->others, &st);
      g->nothers++;
      return;
    }
    victim = (g->ndead > 1 && DEAD(g, 0).seq == g->main_seq);
    addup(&g->others, &DEAD(g, victim).st);
    g->nothers++;
    if (victim == 1) DEAD(g, 1) = DEAD(g, 0);  /* the main thread's stays */
    g->deadhead = (g->deadhead + 1) % g->deadsize;
    g->ndead--;
  }
  /* Threads mostly end in the order they started: a short walk back. */
  for (i = g->ndead; i > 0 && DEAD(g, i - 1).seq > t->seq; i--)
    DEAD(g, i) = DEAD(g, i - 1);
  DEAD(g, i).seq = t->seq;
  fill(&DEAD(g, i).st, t, 0);
  g->ndead++;
}


/* Takes 't' off the list of live threads (mutex held). */
static void unlink_thread (gil_t *g, gil_thread *t) {
  if (t->prev) t->prev->next = t->next;
  else if (g->threads == t) g->threads = t->next;
  if (t->next) t->next->prev = t->prev;
  t->next = t->prev = NULL;
}


void gil_exit (gil_thread *t) {
  gil_t *g = t->gil;
  double when = now();
  lock(g);
  if (g->locked && g->holder == t) {
    give(g, t, EV_REL_EXIT);
    g->holder = NULL;
  }
  else {
    trace(g, t, EV_REL_EXIT, when, 0);
    if (g->policy->depart && t->epoch == g->epoch) g->policy->depart(g, t);
  }
  if (t->epoch == g->epoch) {  /* else gil_close took care of it */
    unlink_thread(g, t);
    g->nthreads--;
    set_ticking(g);
    bury(g, t);
    handover(g, t);
  }
  if (g->holder == t) g->holder = NULL;
  unlock_and_wake(g);
}


void gil_finalize (gil_thread *t) {
  gil_t *g = t->gil;
  lock(g);
  g->finalizing = 1;
  g->finalizer = t;
  unlock(g);
}


/*
** The interpreter is gone. Threads still registered (parked daemons, host
** threads still attached) keep their records, which they never use again:
** their figures and events are kept as those of finished threads, and the
** new epoch tells gil_exit that they are off the list already.
*/
void gil_close (gil_t *g) {
  gil_thread *t;
  lock(g);
  for (t = g->threads; t; t = t->next) {
    trace(g, t, EV_REL_EXIT, now(), 0);
    bury(g, t);
    handover(g, t);
  }
  g->threads = NULL;
  g->nthreads = 0;
  set_ticking(g);
  g->holder = NULL;
  g->epoch++;
  unlock(g);
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
void gil_after_fork (gil_thread *t) {
  gil_t *g = t->gil;
  make_sync(g);
  g->threads = t;
  t->next = t->prev = NULL;
  t->thread = pthread_self();
  t->trace = NULL;
  g->tracing = 0;
  g->trace_left = NULL;
  g->out_file = NULL;  /* the trace's file and path are the parent's */
  g->out_path = NULL;
  g->locked = 1;
  atomic_store(&g->released, 0);
  g->holder = t;
  g->finalizing = 0;
  atomic_store(&g->drop_request, 0);
  /* the other threads' waits are gone with them */
  g->nthreads = 1;
  g->queue = g->queue_tail = NULL;
  g->nprio = 0;
  gil_cond_init(&t->scond);
  if (g->sched) {
    g->sched->turn = g->sched->keeper = g->sched->starter = NULL;
    g->sched->yielder = NULL;
    g->sched->grace_until = 0;
    g->sched->expect = 0;
    t->sstate = SCHED_RUN;
  }
  set_ticking(g);
}

/* }====================================================== */


/* A switch interval is a positive number of seconds; the layers above
** check it, this keeps the conversion defined whatever comes. */
void gil_setinterval (gil_t *g, double secs) {
  long us = (secs >= 1e-6 && secs < 1e9) ? (long)(secs * 1e6)
          : (secs >= 1e9 ? (long)1e15 : 1);
  lock(g);
  g->interval_us = us;
  unlock(g);
}


double gil_getinterval (gil_t *g) {
  double s;
  lock(g);
  s = g->interval_us / 1e6;
  unlock(g);
  return s;
}


void gil_setcheckinterval (gil_t *g, int n) {
  atomic_store_explicit(&g->check_interval, n > 0 ? n : 1,
                        memory_order_relaxed);
}


/*
** The waiters of the policy being replaced may sleep on 'cond', on
** 'switch_cond' (a holder forced off, under new) or somewhere of the
** policy's own (fifo's queue): all are woken, see that the generation
** changed and start waiting again under the new policy. A trace notes the
** change, on the lane of the thread that made it (or of the holder, when
** the change comes from a thread the GIL does not know).
*/
void gil_setpolicy (gil_t *g, const gil_policy *p) {
  gil_thread *by = gil_self();
  lock(g);
  if (p != g->policy) {
    const gil_policy *was = g->policy;
    g->policy = p;
    g->policy_gen++;
    if (was->leave) was->leave(g);
    pthread_cond_broadcast(&g->cond);
    pthread_cond_broadcast(&g->switch_cond);
    set_ticking(g);
    if (by == NULL || by->gil != g || by->epoch != g->epoch)
      by = g->holder ? g->holder : g->threads;
    if (by != NULL) trace(g, by, EV_POLICY, now(), (unsigned long)(uintptr_t)p);
  }
  unlock(g);
}


const gil_policy *gil_getpolicy (gil_t *g) {
  const gil_policy *p;
  lock(g);
  p = g->policy;
  unlock(g);
  return p;
}


/*
** {======================================================
** Statistics
** =======================================================
*/

static int nrecords (gil_t *g) {
  int n = g->ndead + (g->nothers > 0);
  gil_thread *t;
  for (t = g->threads; t; t = t->next) n++;
  return n;
}


void gil_getstats (gil_t *g, gilua_stats *st) {
  lock(g);
  *st = g->stats;
  st->elapsed = now() - g->stats_since;
  st->threads = nrecords(g);
  unlock(g);
}


/* Live threads and finished ones merged in 'seq' order (the live list is
** newest first: walk it from its tail). */
int gil_threadstats (gil_t *g, gilua_threadstats *out, int max) {
  gil_thread *t, *tail = NULL;
  int n = 0, d = 0;
  double when = now();
  lock(g);
  for (t = g->threads; t; t = t->next) {
    tail = t;
    if (t == g->holder && g->locked) {  /* count the ongoing hold too */
      t->held += when - t->hold_since;
      t->hold_since = when;
    }
  }
  t = tail;
  while (t != NULL || d < g->ndead) {
    if (t != NULL && (d == g->ndead || t->seq < DEAD(g, d).seq)) {
      if (n < max) fill(&out[n], t, 1);
      t = t->prev;
    }
    else if (n < max) out[n] = DEAD(g, d++).st;
    else d++;
    n++;
  }
  if (g->nothers > 0) {
    if (n < max) {
      out[n] = g->others;
      snprintf(out[n].name, sizeof out[n].name, "(%d more finished threads)",
               g->nothers);
    }
    n++;
  }
  unlock(g);
  return n;
}


void gil_resetstats (gil_t *g) {
  gil_thread *t;
  double when = now();
  lock(g);
  memset(&g->stats, 0, sizeof g->stats);
  g->stats_since = when;
  cleardead(g);
  for (t = g->threads; t; t = t->next) resetfigures(t, when);
  unlock(g);
}


void gil_setname (gil_thread *t, const char *name) {
  gil_t *g = t->gil;
  lock(g);
  snprintf(t->name, sizeof t->name, "%s", name);
  unlock(g);
}


/* The same for the running thread of ident 'ident' (a rename from another
** thread); 0 if no such thread runs. */
int gil_setname_ident (gil_t *g, unsigned long ident, const char *name) {
  gil_thread *t;
  int found = 0;
  lock(g);
  for (t = g->threads; t; t = t->next)
    if (t->ident == ident) {
      snprintf(t->name, sizeof t->name, "%s", name);
      found = 1;
      break;
    }
  unlock(g);
  return found;
}

/* }====================================================== */
