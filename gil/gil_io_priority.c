/*
** gil_io_priority.c: the policy "io-priority": new's protocol, plus
** priority for a thread coming back from a blocking call, as proposed for
** CPython in bpo-7946 (2010, never merged).
**
** Under new, a thread whose I/O has completed waits a whole switch
** interval beside a CPU-bound thread before it asks for the GIL: the
** convoy effect, about 5 ms per wake-up. Here a thread that comes back
** from a blocking call (I/O, sleep, a lock or queue wait, join) and finds
** the GIL taken posts its drop request at once, and until it has the GIL
** no other waiter may take it: the holder is preempted within
** microseconds and the GIL goes to the thread that was blocked. Other
** waiters (CPU-bound threads forced off, threads preempted) follow new's
** rules.
**
** Like new's waiter, it then spins a while for the release (gil_ask_drop).
** Giving up the CPU in that spin (sched_yield) instead helps when the
** holder shares the waiter's core, but on a busy machine it hands the core
** to other processes for whole time slices: measured on 2 busy cores,
** ping-pong beside a CPU-bound thread fell from 14,000-34,000 to 600-1,800
** round trips a second, so the spin stays new's.
**
** The price: every wake-up of an I/O-bound thread preempts the CPU-bound
** one, and a thread that blocks often (even for a moment: a print releases
** the GIL around its write) takes the GIL from a CPU-bound thread each
** time. docs/gil.md has the figures.
*/
#include "gil.h"


static void iop_wait (gil_t *g, gil_thread *t, int why) {
  unsigned gen = g->policy_gen;
  int prio = 0;
  if (why == GIL_FROM_BLOCKING && g->locked && gil_waits_on(g, t, gen)) {
    prio = 1;
    g->nprio++;
    gil_ask_drop(g, t);
  }
  while ((g->locked || (g->nprio > 0 && !prio)) && gil_waits_on(g, t, gen))
    gil_wait_step(g, t, &g->cond, g->interval_us / 1e6);
  if (prio) g->nprio--;
}


/* With a priority waiter, all waiters are woken: a plain signal might
** wake another one, which may not take the GIL, while the priority waiter
** sleeps on. */
static void iop_released (gil_t *g, gil_thread *t, int why) {
  (void)t; (void)why;
  if (g->nprio > 0) pthread_cond_broadcast(&g->cond);
  else pthread_cond_signal(&g->cond);
}


const gil_policy gil_policy_io_priority = {
  "io-priority", iop_wait, iop_released, gil_wait_taken, NULL, NULL, NULL, NULL
};
