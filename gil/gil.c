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
*/
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gil.h"

atomic_int gil_drop_request;

static struct {
  pthread_mutex_t mutex;
  pthread_cond_t cond;          /* the GIL was released */
  pthread_cond_t switch_cond;   /* the GIL was taken (after a forced drop) */
  int locked;
  int finalizing;               /* only 'finalizer' may take the GIL */
  gilua_tstate *holder;         /* current holder, or last one if free */
  gilua_tstate *finalizer;
  gilua_tstate *threads;        /* every thread state */
  unsigned long switch_number;  /* times the GIL was taken */
  long interval_us;
  gilua_stats stats;
} gil = {
  .mutex = PTHREAD_MUTEX_INITIALIZER,
  .interval_us = 5000,
};

#define lock()    pthread_mutex_lock(&gil.mutex)
#define unlock()  pthread_mutex_unlock(&gil.mutex)


static double now (void) {
  return gilua_monotonic();
}


/* Called with the mutex held, once the GIL is free. */
static void take (gilua_tstate *ts) {
  double t = now();
  if (gil.holder != ts && gil.holder != NULL) gil.stats.switches++;
  gil.locked = 1;
  gil.holder = ts;
  gil.switch_number++;
  /* A request was for whoever held the GIL before: it is answered now. */
  atomic_store_explicit(&gil_drop_request, 0, memory_order_relaxed);
  ts->acquisitions++;
  ts->hold_since = t;
  pthread_cond_broadcast(&gil.switch_cond);
}


static void give (gilua_tstate *ts) {
  ts->held += now() - ts->hold_since;
  ts->holds_gil = 0;
  gil.locked = 0;
  pthread_cond_signal(&gil.cond);
}


void gil_init (gilua_tstate *ts) {
  pthread_mutex_init(&gil.mutex, NULL);
  gilua_cond_init(&gil.cond);
  gilua_cond_init(&gil.switch_cond);
  gil.locked = 0;
  gil.finalizing = 0;
  gil.holder = NULL;
  gil.threads = NULL;
  memset(&gil.stats, 0, sizeof gil.stats);
  atomic_store(&gil_drop_request, 0);
  gil_signal_init();
  gil_register(ts);
  gil_acquire(ts);
}


void gil_destroy (void) {
  /* The mutex stays usable: a daemon thread may still be parked in
  ** gil_acquire, waiting forever. */
  gil.threads = NULL;
}


void gil_acquire (gilua_tstate *ts) {
  double start = now();
  lock();
  while (gil.locked || (gil.finalizing && ts != gil.finalizer)) {
    unsigned long seen = gil.switch_number;
    struct timespec deadline;
    int rc;
    if (gil.finalizing && ts != gil.finalizer) {
      /* The interpreter is closing: a daemon thread never runs Lua again. */
      pthread_cond_wait(&gil.cond, &gil.mutex);
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
      gil_signal_post(gil.holder);
    }
  }
  take(ts);
  ts->waited += ts->hold_since - start;
  ts->holds_gil = 1;
  unlock();
}


void gil_release (gilua_tstate *ts) {
  lock();
  give(ts);
  unlock();
}


void gil_yield (gilua_tstate *ts) {
  lock();
  if (!atomic_load_explicit(&gil_drop_request, memory_order_relaxed)) {
    unlock();  /* somebody else answered it already */
    return;
  }
  gil.stats.forced_switches++;
  ts->drops_received++;
  give(ts);
  /* Forced switching: do not queue up again before another thread has
  ** taken the GIL, or we would likely take it straight back. */
  while (gil.holder == ts && !gil.finalizing)
    pthread_cond_wait(&gil.switch_cond, &gil.mutex);
  unlock();
  gil_acquire(ts);
}


void gil_finalize (gilua_tstate *ts) {
  lock();
  gil.finalizing = 1;
  gil.finalizer = ts;
  unlock();
}


void gil_register (gilua_tstate *ts) {
  lock();
  ts->prev = NULL;
  ts->next = gil.threads;
  if (gil.threads) gil.threads->prev = ts;
  gil.threads = ts;
  unlock();
}


void gil_unregister (gilua_tstate *ts) {
  lock();
  if (ts->prev) ts->prev->next = ts->next;
  else if (gil.threads == ts) gil.threads = ts->next;
  if (ts->next) ts->next->prev = ts->prev;
  if (gil.holder == ts) gil.holder = NULL;
  unlock();
}


/*
** In the child of fork() only the forking thread exists, and it held the
** GIL (it was running Lua). Anything the mutex protected may have been
** caught half-way by another thread of the parent, so all of it is made
** anew rather than trusted.
*/
void gil_after_fork (gilua_tstate *ts) {
  pthread_mutex_init(&gil.mutex, NULL);
  gilua_cond_init(&gil.cond);
  gilua_cond_init(&gil.switch_cond);
  gil.threads = ts;
  ts->next = ts->prev = NULL;
  ts->thread = pthread_self();
  gil.locked = 1;
  gil.holder = ts;
  gil.finalizing = 0;
  atomic_store(&gil_drop_request, 0);
}


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


void gil_getstats (gilua_stats *st) {
  lock();
  *st = gil.stats;
  unlock();
}


void gil_foreach (void (*fn)(gilua_tstate *ts, void *ud), void *ud) {
  gilua_tstate *ts;
  lock();
  for (ts = gil.threads; ts; ts = ts->next) {
    if (ts == gil.holder && gil.locked) {  /* count the ongoing hold too */
      double t = now();
      ts->held += t - ts->hold_since;
      ts->hold_since = t;
    }
    fn(ts, ud);
  }
  unlock();
}


void gil_resetstats (void) {
  gilua_tstate *ts;
  lock();
  memset(&gil.stats, 0, sizeof gil.stats);
  for (ts = gil.threads; ts; ts = ts->next) {
    ts->held = ts->waited = 0;
    ts->acquisitions = ts->drops_requested = ts->drops_received = 0;
    ts->hold_since = now();
  }
  unlock();
}


void gil_setname (gilua_tstate *ts, const char *name) {
  lock();
  snprintf(ts->name, sizeof ts->name, "%s", name);
  unlock();
}
