/*
** gilua_waitq.c: waiting for a change of state that is protected by the
** GIL (a lock becoming free, a queue getting an item).
**
** The state itself is only touched by threads that hold the GIL, so its
** fast paths need no atomic operation. A thread that must wait notes the
** wait queue's generation, drops the GIL and sleeps on the queue's own
** condition variable until the generation moves (or its deadline passes);
** then it takes the GIL back and looks at the state again. The generation
** is written under the GIL and the queue's mutex, so the waiter, which read
** it under the GIL, cannot miss a wake-up that happens after it decided to
** wait.
*/
#include <errno.h>
#include <sched.h>

#include "gilua_vm.h"


void gilua_waitq_init (gilua_waitq *wq, const char *what,
                       const unsigned long *owner) {
  wq->waiters = 0;
  wq->asleep = 0;
  wq->gen = 0;
  wq->what = what;
  wq->owner = owner;
  wq->obj = wq;
  pthread_mutex_init(&wq->m, NULL);
  gilua_cond_init(&wq->c);
}


/*
** A thread waiting on the queue holds the object it waits for, so the
** collector frees a waited-on object only when the interpreter closes:
** then the waiters are daemon threads. Destroying a condition variable
** that a thread sleeps on blocks for ever (glibc waits for its waiters),
** so they are woken first, and the memory is released only once none is
** left between its lock and unlock of 'm'. Woken, they go for the GIL and
** park there for good (gil_finalize), never touching the queue again.
*/
void gilua_waitq_destroy (gilua_waitq *wq) {
  double give_up = gilua_monotonic() + 2.0;
  pthread_mutex_lock(&wq->m);
  while (wq->asleep > 0) {
    wq->gen++;
    pthread_cond_broadcast(&wq->c);
    pthread_mutex_unlock(&wq->m);
    if (gilua_monotonic() > give_up)
      return;  /* a sleeper that never leaves: leave them be, at exit */
    sched_yield();
    pthread_mutex_lock(&wq->m);
  }
  pthread_mutex_unlock(&wq->m);
  pthread_cond_destroy(&wq->c);
  pthread_mutex_destroy(&wq->m);
}


/* Under the scheduler the queue itself is the key the waiters block on,
** and the GIL is all the protection its state needs. */
static int sched_wait (lua_State *L, gilua_waitq *wq, double until) {
  gilua_tstate *ts = gilua_ts();
  int intime;
  if (wq->owner && *wq->owner)
    gilua_sched_note(*wq->owner, ", held by ", "%s at %p", wq->what, wq->obj);
  else gilua_sched_note(0, NULL, "%s at %p", wq->what, wq->obj);
  ts->waits_on = wq->obj;
  wq->waiters++;
  intime = gilua_sched_wait(L, wq, until);
  wq->waiters--;
  ts->waits_on = NULL;
  return intime;
}


int gilua_waitq_wait (lua_State *L, gilua_waitq *wq, double until) {
  unsigned long seen = wq->gen;
  struct timespec deadline;
  int rc = 0;
  if (gilua_sched_on(gilua_ts())) return sched_wait(L, wq, until);
  if (until >= 0) gilua_deadline(&deadline, until - gilua_monotonic());
  wq->waiters++;
  GILUA_BEGIN_ALLOW_THREADS(L)
    pthread_mutex_lock(&wq->m);
    wq->asleep++;
    while (wq->gen == seen && rc == 0)
      rc = gilua_condwait(&wq->c, &wq->m, until >= 0 ? &deadline : NULL);
    wq->asleep--;
    pthread_mutex_unlock(&wq->m);
  GILUA_END_ALLOW_THREADS(L)
  wq->waiters--;
  if (rc == EINTR) gilua_checkinterrupt(L);
  return rc != ETIMEDOUT;
}


void gilua_waitq_wake (gilua_waitq *wq, int all) {
  if (wq->waiters > 0) {
    gilua_tstate *ts = gilua_ts();
    if (ts != NULL && gilua_sched_on(ts)) {
      gilua_sched_wake(wq, all);
      return;
    }
    pthread_mutex_lock(&wq->m);
    wq->gen++;
    if (all) pthread_cond_broadcast(&wq->c);
    else pthread_cond_signal(&wq->c);
    pthread_mutex_unlock(&wq->m);
  }
}
