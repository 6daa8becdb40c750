/*
** gil_new.c: the policy "new", CPython's GIL since 3.2.
**
** - A thread that wants the GIL waits on 'cond' for at most the switch
**   interval. If the GIL is still held when the interval runs out, and it
**   has not changed hands meanwhile (switch_number is unchanged), the
**   waiter posts a drop request (gil_request_drop), then waits again.
**
** - The holder answers at its next VM instruction or safe point in C: it
**   lets go and, because the drop was forced, waits on 'switch_cond' until
**   another thread has actually taken the GIL before queueing up again.
**   Without that wait the holder, which is already running, would usually
**   win the race for the mutex against the thread that was woken up, and a
**   CPU-bound thread would starve the rest ("forced switching").
**
** - A voluntary release (around a blocking call) does not wait for
**   anybody: the thread is about to block anyway. Whoever wins the mutex
**   next takes the GIL; there is no queue and no priority.
**
** io-priority and fifo are built on this protocol: they share its waiting
** step (gil_wait_step, gil_ask_drop) and its forced switching
** (gil_wait_taken).
*/
#include <errno.h>

#include "gil.h"


/*
** A holder answers a drop request within microseconds (the signal, then its
** next call, return or loop back-edge). Were the waiter to go back to sleep
** on the condition variable meanwhile, its CPU would go idle, and waking an
** idle CPU, on a virtual machine above all, takes up to a millisecond or
** two: more than the switch itself, and paid at every forced switch. So
** after posting a request the waiter spins for a short while, mutex
** released, on the flag that the release sets, and only then sleeps again.
*/
#define SPIN_SECS 200e-6

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#else
#define cpu_relax() ((void)0)
#endif

void gil_ask_drop (gil_t *g, gil_thread *t) {
  double until;
  gil_request_drop(g, t);
  until = gil_monotonic() + SPIN_SECS;
  pthread_mutex_unlock(&g->mutex);
  while (!atomic_load_explicit(&g->released, memory_order_relaxed)
         && gil_monotonic() < until)
    cpu_relax();
  pthread_mutex_lock(&g->mutex);
}


void gil_wait_step (gil_t *g, gil_thread *t, pthread_cond_t *cond,
                    double secs) {
  unsigned long seen = g->switch_number;
  struct timespec deadline;
  gil_deadline(&deadline, secs);
  if (pthread_cond_timedwait(cond, &g->mutex, &deadline) == ETIMEDOUT
      && g->locked && g->switch_number == seen && g->holder != t)
    gil_ask_drop(g, t);  /* a whole interval and no switch: let go */
}


static void new_wait (gil_t *g, gil_thread *t, int why) {
  unsigned gen = g->policy_gen;
  (void)why;
  while (g->locked && gil_waits_on(g, t, gen))
    gil_wait_step(g, t, &g->cond, g->interval_us / 1e6);
}


/* A thread that lets go to block (or leaves) wakes its successor once it
** has let go of the mutex too; one that yields to a drop request must
** signal now, before it waits for the switch. */
static void new_released (gil_t *g, gil_thread *t, int why) {
  (void)t;
  if (why == EV_REL_FORCED) pthread_cond_signal(&g->cond);
  else gil_owe_wake(g);
}


/* Forced switching: do not queue up again before another thread has taken
** the GIL, or we would likely take it straight back. That wait is part of
** the time this thread waits for the GIL. A change of policy ends it: the
** new policy decides. */
void gil_wait_taken (gil_t *g, gil_thread *t) {
  unsigned gen = g->policy_gen;
  while (g->holder == t && !g->finalizing && g->policy_gen == gen)
    pthread_cond_wait(&g->switch_cond, &g->mutex);
}


const gil_policy gil_policy_new = {
  "new", new_wait, new_released, gil_wait_taken, NULL, NULL, NULL, NULL
};
