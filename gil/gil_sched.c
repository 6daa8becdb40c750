/*
** gil_sched.c: the deterministic scheduler, the policy "sched".
**
** Exactly one thread runs Lua at a time; if the GIL changes hands only
** where a seeded generator says, and only to the thread it draws, the run
** is a function of the seed. So this policy keeps, under the GIL's mutex,
** a logical state for every thread (gil_thread.sstate) that changes only
** at points the program itself reaches, never when the OS happens to run
** a thread:
**
**   RUN      holds the GIL
**   READY    may be given it
**   BLOCKED  waits (gil_block) for a wake-up (gil_sched_wake, made by the
**            holder) or for a deadline on the virtual clock
**   OUTSIDE  in a blocking call the scheduler knows nothing of (I/O, a
**            child process): plain gil_release
**
** Whenever the holder lets go, pick() draws the next holder among the
** READY threads and hands it the 'turn'; only that thread may take the
** GIL, however early the others wake. A thread made READY need not be
** there yet physically (a new thread still on its way, a thread still
** asleep on its condition variable): the draw does not wait for the OS,
** the hand-over does.
**
** Preemption. While more than one thread exists the policy has a tick:
** the VM counts instructions (vm/gilua_hook.c) and calls gil_tick after
** 'tick' of them, a number drawn from 1 to 2*MEANTICK-1 at every take; the
** tick draws among the READY threads and the holder itself. So a switch
** may land between any two instructions, as with the policy "old", but
** where the seed says. One lock acquisition in SYNCPOINT is a preemption
** point too (gil_sched_point): bugs of synchronisation, a deadlock of two
** locks taken in opposite order first, hang on a switch right after one
** (CHESS preempts there only); by instruction counts alone such a window
** of a few instructions would be hit once in a hundred runs.
**
** Time. The clock the program sees is virtual (gil_sched_now): it stands
** still while any thread is READY, and when none is, it jumps to the
** earliest deadline of the BLOCKED threads, which become READY (timed
** out). A program that sleeps an hour replays exactly and at once.
**
** What cannot be determined. A thread OUTSIDE comes back when the OS
** says. The others wait for it, GIL free, for a GRACE of real time: a
** write to a terminal or a file is back long before, and nothing else
** ran, so the run stays determined. Past the grace (a child process, a
** pipe another thread writes to, a socket), the scheduler goes on without
** it and says once, on stderr, that this run may not replay; so does a
** thread that registers without being expected (a host thread, another
** interpreter's). Threads started from Lua are expected: their starter
** waits, holding the GIL, until they have registered (gil_sched_await).
**
** Deadlock. When no thread is READY or OUTSIDE and no BLOCKED thread has
** a deadline, nothing can ever wake one: the layer above prints who
** waits on what (gil_sched_ondeadlock) and the process exits with
** GILUA_EXIT_DEADLOCK. Not while the interpreter closes: daemon threads
** may wait for ever then.
**
** The tools this learned from: Go's testing/synctest (the bubble's fake
** clock that moves when every goroutine is durably blocked), CHESS and
** Coyote (the scheduler as the only source of interleavings), rr's chaos
** mode (random preemption points).
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gil.h"

#define MEANTICK 200    /* instructions between preemption points, mean */
#define SYNCPOINT 4     /* 1 in SYNCPOINT lock acquisitions is one too */
#define GRACE 0.1       /* seconds others wait for a thread OUTSIDE */

static gil_deadlock_fn ondeadlock;


/* splitmix64: a whole state in 64 bits, good enough to draw interleavings
** and trivially seeded. */
static unsigned long long draw (gil_sched *s) {
  unsigned long long z = (s->rng += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

#define below(s,n)  ((unsigned)(draw(s) % (unsigned long long)(n)))


void gil_sched_nondet (gil_t *g, const char *why) {
  gil_sched *s = g->sched;
  if (s == NULL || s->nondet) return;
  s->nondet = 1;
  fprintf(stderr, "gilua: sched: determinism lost: %s; this run may not "
          "replay\n", why);
}


void gil_sched_ondeadlock (gil_deadlock_fn fn) {
  ondeadlock = fn;
}


static void make_ready (gil_thread *t, int timedout) {
  t->sstate = SCHED_READY;
  t->stimedout = timedout;
}


/* The virtual clock jumps to the earliest deadline; the threads it wakes
** become READY. Returns how many. */
static int advance (gil_t *g) {
  gil_sched *s = g->sched;
  gil_thread *t;
  double next = -1;
  int n = 0;
  for (t = g->threads; t; t = t->next)
    if (t->sstate == SCHED_BLOCKED && t->sdeadline >= 0 &&
        (next < 0 || t->sdeadline < next))
      next = t->sdeadline;
  if (next < 0) return 0;
  if (next > s->vnow) s->vnow = next;
  for (t = g->threads; t; t = t->next)
    if (t->sstate == SCHED_BLOCKED && t->sdeadline >= 0 &&
        t->sdeadline <= s->vnow) {
      make_ready(t, 1);
      n++;
    }
  return n;
}


static void deadlock (gil_t *g) {
  fflush(stdout);
  fputs("gilua: deadlock: every thread waits and nothing can wake one\n",
        stderr);
  if (ondeadlock) ondeadlock(g);
  fflush(NULL);
  _exit(GILUA_EXIT_DEADLOCK);
}


/* The GIL stays free until 'until' (real time), for a thread OUTSIDE to
** come back; one waiting thread keeps the time. Without any, nothing but
** such a thread can run anyway. */
static void arm_grace (gil_t *g, double until) {
  gil_sched *s = g->sched;
  gil_thread *t, *keeper = NULL;
  for (t = g->threads; t && keeper == NULL; t = t->next)
    if (t->sstate == SCHED_READY) keeper = t;
  for (t = g->threads; t && keeper == NULL; t = t->next)
    if (t->sstate == SCHED_BLOCKED) keeper = t;
  s->grace_until = until;
  s->keeper = keeper;
  if (keeper) pthread_cond_signal(&keeper->scond);
}


/*
** The GIL is free: whom does it go to? (mutex held) With 'late', threads
** OUTSIDE are no longer waited for.
*/
static void pick (gil_t *g, int late) {
  gil_sched *s = g->sched;
  gil_thread *t;
  double first_out = -1;
  int nout = 0, n = 0, k;
  s->turn = s->keeper = NULL;
  s->grace_until = 0;
  if (g->locked || g->finalizing) return;
  for (t = g->threads; t; t = t->next) {
    if (t->sstate == SCHED_BLOCKED && t->sdeadline >= 0 &&
        t->sdeadline <= s->vnow)  /* the clock moved on (gil_sched_pass) */
      make_ready(t, 1);
    if (t->sstate == SCHED_OUTSIDE) {
      nout++;
      if (!t->slate && (first_out < 0 || t->outside_since < first_out))
        first_out = t->outside_since;
    }
    else if (t->sstate == SCHED_READY) n++;
  }
  if (!late && first_out >= 0) {
    arm_grace(g, first_out + GRACE);
    return;
  }
  if (n == 0 && nout > 0 && !late) {  /* pace the clock by real time */
    arm_grace(g, gil_monotonic() + GRACE);
    return;
  }
  if (n == 0 && (n = advance(g)) == 0) {
    if (nout > 0) return;  /* the first one back takes the GIL */
    for (t = g->threads; t; t = t->next)
      if (t->sstate == SCHED_BLOCKED) deadlock(g);
    return;
  }
  if (s->yielder && s->yielder->sstate == SCHED_READY && n > 1) {
    s->yielder->sstate = SCHED_RUN;  /* out of the draw, for a moment */
    pick(g, late);
    s->yielder->sstate = SCHED_READY;
    return;
  }
  k = (int)below(s, n);
  for (t = g->threads; t; t = t->next)
    if (t->sstate == SCHED_READY && k-- == 0) break;
  s->turn = t;
  pthread_cond_signal(&t->scond);
}


/* The grace ran out (the keeper's wait, mutex held, GIL free). */
static void expire (gil_t *g) {
  gil_thread *t;
  for (t = g->threads; t; t = t->next)
    if (t->sstate == SCHED_OUTSIDE && !t->slate) {
      t->slate = 1;
      gil_sched_nondet(g, "a blocking call the scheduler does not control "
                       "(a process, a pipe, a socket) outlasted its grace");
    }
  pick(g, 1);
}


/* 't' takes the GIL: the next preemption point is drawn. */
static void mine (gil_t *g, gil_thread *t) {
  gil_sched *s = g->sched;
  s->turn = s->keeper = NULL;
  s->grace_until = 0;
  t->sstate = SCHED_RUN;
  atomic_store_explicit(&s->tick, 1 + (int)below(s, 2 * MEANTICK - 1),
                        memory_order_relaxed);
}


/* Waits (mutex held) until 't' has the turn and the GIL is free, then
** makes it the holder-to-be; returns 0 if the policy changed first. The
** keeper of a grace waits with a deadline, and leaves when it runs out. */
static int await_turn (gil_t *g, gil_thread *t, unsigned gen) {
  gil_sched *s = g->sched;
  int interrupted = 0;
  while (gil_waits_on(g, t, gen)) {
    struct timespec dl;
    int rc;
    if (!g->locked && s->turn == t) {
      mine(g, t);
      return 1;
    }
    if (s->keeper == t && s->grace_until > 0 && !g->locked) {
      double left = s->grace_until - gil_monotonic();
      if (left <= 0) {
        expire(g);
        continue;
      }
      gil_deadline(&dl, left);
      rc = pthread_cond_timedwait(&t->scond, &g->mutex, &dl);
    }
    else if (interrupted)
      rc = pthread_cond_wait(&t->scond, &g->mutex);
    else
      rc = gil_condwait(&t->scond, &g->mutex, NULL);
    if (rc == EINTR && !interrupted) {
      /* Ctrl-C: the main thread must get to raise KeyboardInterrupt */
      interrupted = 1;
      if (t->sstate == SCHED_BLOCKED) make_ready(t, 0);
      if (!g->locked && s->turn == NULL && s->keeper == NULL) pick(g, 0);
    }
  }
  return 0;
}


static void sched_wait (gil_t *g, gil_thread *t, int why) {
  gil_sched *s = g->sched;
  (void)why;
  if (t->sstate == SCHED_OUTSIDE || t->sstate == SCHED_RUN) {
    /* Back from outside (or a thread the scheduler had not seen, or one
    ** whose tick waited its turn already): the GIL was kept free for it,
    ** or nobody wants it. */
    make_ready(t, 0);
    if (!g->locked && s->turn == NULL) {
      mine(g, t);
      return;
    }
  }
  gil_want(g, t);
  await_turn(g, t, g->policy_gen);
}


static void sched_released (gil_t *g, gil_thread *t, int why) {
  if (why == EV_REL_EXIT) t->sstate = SCHED_GONE;
  else if (why == EV_REL_FORCED) make_ready(t, 0);  /* an old request */
  else if (t->sstate != SCHED_BLOCKED && t->sstate != SCHED_READY) {
    t->sstate = SCHED_OUTSIDE;
    t->slate = 0;
    t->outside_since = gil_monotonic();
  }
  pick(g, 0);
}


static void sched_yieldhook (gil_t *g, gil_thread *t) {
  (void)g; (void)t;
}


/*
** A preemption point: the holder, READY again, is one of the candidates.
** If the draw gives the GIL to another, the holder waits here for its
** next turn (gil_tick then finds that the GIL changed hands, and the
** policy's wait gives it back at once): waiting for the other to take it
** first and then for its turn would cost one more wake-up a switch.
*/
static void sched_tick (gil_t *g, gil_thread *t) {
  gil_sched *s = g->sched;
  make_ready(t, 0);
  pick(g, 0);
  s->yielder = NULL;
  if (s->turn == t || s->turn == NULL) {
    mine(g, t);
    return;
  }
  await_turn(g, t, g->policy_gen);
}


/* Everyone leaves this policy's waits. */
static void sched_leave (gil_t *g) {
  gil_thread *t;
  for (t = g->threads; t; t = t->next) {
    pthread_cond_broadcast(&t->scond);
    t->sstate = SCHED_RUN;
  }
}




/*
** {======================================================
** What gil.c and the layers above call
** =======================================================
*/

#define lock(g)    pthread_mutex_lock(&(g)->mutex)
#define unlock(g)  pthread_mutex_unlock(&(g)->mutex)


static void reset (gil_t *g) {
  gil_sched *s = g->sched;
  s->rng = s->seed;
  s->vnow = 0;
  s->turn = s->keeper = s->starter = s->yielder = NULL;
  s->grace_until = 0;
  s->expect = s->nondet = 0;
  s->blockseq = 0;
  atomic_store(&s->tick, MEANTICK);
}


int gil_sched_start (gil_t *g, unsigned long long seed) {
  gil_sched *s;
  lock(g);
  if (g->nthreads > 1) {
    unlock(g);
    return EBUSY;
  }
  if (g->sched == NULL && (g->sched = calloc(1, sizeof *g->sched)) == NULL) {
    unlock(g);
    return ENOMEM;
  }
  s = g->sched;
  if (!gil_sched_on(g)) s->before = g->policy;
  s->seed = seed;
  reset(g);
  if (g->threads) g->threads->sstate = SCHED_RUN;
  unlock(g);
  gil_setpolicy(g, &gil_policy_sched);
  lock(g);
  atomic_store(&g->sched_on, 1);
  unlock(g);
  return 0;
}


void gil_sched_stop (gil_t *g) {
  const gil_policy *p;
  lock(g);
  if (!gil_sched_on(g)) {
    unlock(g);
    return;
  }
  atomic_store(&g->sched_on, 0);
  p = g->sched->before;
  unlock(g);
  gil_setpolicy(g, p);
}


int gil_sched_seed (gil_t *g, unsigned long long *seed) {
  int on;
  lock(g);
  on = gil_sched_on(g);
  if (on && seed) *seed = g->sched->seed;
  unlock(g);
  return on;
}


void gil_sched_pass (gil_t *g, double secs) {
  lock(g);
  if (gil_sched_on(g) && secs > 0) g->sched->vnow += secs;
  unlock(g);
}


double gil_sched_now (gil_t *g) {
  double v;
  lock(g);
  v = g->sched ? g->sched->vnow : 0;
  unlock(g);
  return v;
}


void gil_sched_wake (gil_t *g, const void *key, int all) {
  gil_thread *t, *first = NULL;
  lock(g);
  for (t = g->threads; t; t = t->next)
    if (t->sstate == SCHED_BLOCKED && t->skey == key) {
      if (all) make_ready(t, 0);
      else if (first == NULL || t->sorder < first->sorder) first = t;
    }
  if (first) make_ready(first, 0);
  unlock(g);
}


/* At a point the draw is among the others: the holder goes on only if
** nobody else is READY. */
int gil_sched_point (gil_thread *t) {
  gil_t *g = t->gil;
  int here, switched;
  lock(g);
  here = gil_sched_on(g) && g->nthreads > 1 && below(g->sched, SYNCPOINT) == 0;
  if (here) g->sched->yielder = t;
  unlock(g);
  if (!here) return 0;
  switched = gil_tick(t);
  lock(g);
  if (g->sched->yielder == t) g->sched->yielder = NULL;
  unlock(g);
  return switched;
}


void gil_sched_expect (gil_thread *t) {
  gil_t *g = t->gil;
  lock(g);
  g->sched->expect++;
  g->sched->starter = t;
  unlock(g);
}


void gil_sched_unexpect (gil_t *g) {
  lock(g);
  if (g->sched && g->sched->expect > 0) {
    g->sched->expect--;
    if (g->sched->starter) pthread_cond_signal(&g->sched->starter->scond);
  }
  unlock(g);
}


/* The starter holds the GIL all along: nothing else runs meanwhile, so the
** newcomer is among the READY from the same instruction on, every run. */
void gil_sched_await (gil_thread *t) {
  gil_t *g = t->gil;
  lock(g);
  while (g->sched->expect > 0 && gil_sched_on(g))
    pthread_cond_wait(&t->scond, &g->mutex);
  g->sched->starter = NULL;
  unlock(g);
}


/* The first thread of an opening starts the draws and the clock again:
** each opening replays the seed. */
static void sched_arrive (gil_t *g, gil_thread *t) {
  gil_sched *s = g->sched;
  make_ready(t, 0);
  if (g->nthreads == 1) {  /* the opening thread: the GIL is its own */
    reset(g);
    t->sstate = SCHED_RUN;
  }
  else if (s->expect > 0) {
    s->expect--;
    if (s->starter) pthread_cond_signal(&s->starter->scond);
  }
  else gil_sched_nondet(g, "a thread came from outside the program "
                        "(a host thread, another interpreter)");
}


/* A thread leaves without the GIL (from OUTSIDE): the GIL may have been
** kept for it. */
static void sched_depart (gil_t *g, gil_thread *t) {
  gil_sched *s = g->sched;
  int waited = (t->sstate == SCHED_OUTSIDE);
  t->sstate = SCHED_GONE;
  if (s->keeper == t) s->keeper = NULL;
  if (s->starter == t) s->starter = NULL;
  if (waited && !g->locked && s->turn == NULL) pick(g, 0);
}

/* }====================================================== */


const gil_policy gil_policy_sched = {
  "sched", sched_wait, sched_released, sched_yieldhook, sched_tick, sched_leave,
  sched_arrive, sched_depart
};
