/*
** gil_fifo.c: the policy "fifo": new's protocol, but the GIL goes to the
** waiters in the order they arrived.
**
** Under new, a released GIL goes to whichever waiter wins the mutex, so N
** CPU-bound threads get unequal shares (the largest 1.15 to 1.75 times the
** smallest, measured). Here every waiter takes a place at the tail of a
** queue, with a condition variable of its own (on its stack): a release
** wakes the head alone, and only the head may take the GIL. The head, and
** only the head, posts the drop request, one switch interval after the
** holder took the GIL; a holder forced off queues up at the tail, behind
** every thread that was waiting, so CPU-bound threads take turns, one
** interval each.
**
** A thread that finds the GIL free and nobody queued takes it at once; one
** that finds a queue waits its turn even if the GIL happens to be free.
*/
#include "gil.h"


static void enqueue (gil_t *g, gil_waiter *w) {
  w->next = NULL;
  if (g->queue_tail) g->queue_tail->next = w;
  else g->queue = w;
  g->queue_tail = w;
}


static void dequeue (gil_t *g, gil_waiter *w) {
  gil_waiter **p = &g->queue, *prev = NULL;
  while (*p != w) {
    prev = *p;
    p = &(*p)->next;
  }
  *p = w->next;
  if (g->queue_tail == w) g->queue_tail = prev;
}


/* The holder's turn ends an interval after it took the GIL; once asked
** to let go, it gets a whole interval more to answer (it may be in a long
** C call) before it is asked again. */
static double turn_left (gil_t *g) {
  double interval = g->interval_us / 1e6;
  if (gil_drop_requested(g)) return interval;
  return g->taken_at + interval - gil_monotonic();
}


static void fifo_wait (gil_t *g, gil_thread *t, int why) {
  unsigned gen = g->policy_gen;
  gil_waiter w;
  (void)why;
  if (!g->locked && g->queue == NULL) return;  /* free, nobody before us */
  gil_want(g, t);
  gil_cond_init(&w.cond);
  w.queued = 1;
  enqueue(g, &w);
  while ((g->locked || g->queue != &w) && gil_waits_on(g, t, gen)) {
    if (g->queue == &w)
      gil_wait_step(g, t, &w.cond, turn_left(g));
    else pthread_cond_wait(&w.cond, &g->mutex);
  }
  if (w.queued) {  /* else fifo_leave emptied the queue */
    dequeue(g, &w);
    /* The next one is at the head now: its switch interval starts. */
    if (g->queue) pthread_cond_signal(&g->queue->cond);
  }
  pthread_cond_destroy(&w.cond);
}


static void fifo_released (gil_t *g, gil_thread *t, int why) {
  (void)t; (void)why;
  if (g->queue) pthread_cond_signal(&g->queue->cond);
}


/* The holder forced off needs no wait of its own: the thread that asked
** is at the head of the queue, and the holder queues up behind it. */
static void fifo_yield (gil_t *g, gil_thread *t) {
  (void)g; (void)t;
}


static void fifo_leave (gil_t *g) {
  gil_waiter *w;
  for (w = g->queue; w; w = w->next) {
    w->queued = 0;
    pthread_cond_signal(&w->cond);
  }
  g->queue = g->queue_tail = NULL;
}


const gil_policy gil_policy_fifo = {
  "fifo", fifo_wait, fifo_released, fifo_yield, NULL, fifo_leave, NULL, NULL
};
