/*
** gil_fifo.c: the policy "fifo": new's protocol, but the GIL goes to the
** waiters in the order they arrived.
**
** Under new, a released GIL goes to whichever waiter wins the mutex, so N
** CPU-bound threads get unequal shares (the largest 1.15 to 1.75 times the
** smallest, measured). Here every waiter takes a place at the tail of a
** queue, with a condition variable of its own (on its stack): a release
** wakes the head alone, and only the head may take the GIL. The head, and
** only the head, posts the drop request when the holder's turn ends; a
** holder forced off queues up at the tail, behind every thread that was
** waiting, so CPU-bound threads take turns, one interval each.
**
** A thread that finds the GIL free and nobody queued takes it at once; one
** that finds a queue waits its turn even if the GIL happens to be free.
**
** Turns equal in number are not yet equal shares of time. A turn lasts
** until the holder lets go, which is later than its planned end by the
** head's wake-up (its timer fires 0.1 ms late on an idle machine, several
** on a busy one) and by the holder's answer (its next instruction: after
** the C function it is in returns, or once the OS gives it back the CPU
** it took away). So the turns are planned as in deficit round robin: a
** thread forced off some time past its turn's end owes that time; its
** next turn is shorter by as much, and if it owes a whole interval more
** than the next thread in line, it lets the round go by instead (it goes
** back to the tail, and owes an interval less). A thread's
** turns then add up to one interval each, whatever the delays, and
** CPU-bound threads get equal shares of the GIL's time, not only equal
** numbers of turns. A thread back from a blocking call owes nothing, and
** none owes more than MAXOWED intervals.
**
** The head keeps the holder's turn: when it ends. The taker, as it
** leaves the queue, plans its own turn in the next waiter's record; a
** waiter that becomes head while the GIL is held by a thread that took it
** without queueing times that turn from when it was taken.
*/
#include "gil.h"


#define MAXOWED 10              /* intervals a thread may carry over */


/* A waiter: gil.h's, with what timing the turns needs. */
typedef struct fifo_waiter {
  gil_waiter w;                 /* first: the queue links these */
  double owed;                  /* how long its turns ran past their ends */
  double turn_ends;             /* at the head: when the holder's turn ends */
} fifo_waiter;

#define head(g)      ((fifo_waiter *)(g)->queue)
#define interval(g)  ((g)->interval_us / 1e6)


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


/* What a thread forced off this moment owes: the head, which asked, kept
** its turn's end. */
static double owed_now (gil_t *g) {
  double owed = gil_monotonic() - head(g)->turn_ends;
  if (!(owed > 0)) return 0;
  return owed < MAXOWED * interval(g) ? owed : MAXOWED * interval(g);
}


/* What the head sleeps before it asks the holder to let go. Once asked,
** the holder gets a whole interval more to answer (it may be in a long C
** call) before it is asked again. */
static double turn_left (gil_t *g) {
  if (gil_drop_requested(g)) return interval(g);
  return head(g)->turn_ends - gil_monotonic();
}


/* Waits in the queue until 'w' is at the head with the GIL free (or the
** wait must end: the policy changed, or 't' must park). */
static void wait_turn (gil_t *g, gil_thread *t, fifo_waiter *fw,
                       unsigned gen) {
  gil_waiter *w = &fw->w;
  while ((g->locked || g->queue != w) && gil_waits_on(g, t, gen)) {
    if (g->queue == w)
      gil_wait_step(g, t, &w->cond, turn_left(g));
    else pthread_cond_wait(&w->cond, &g->mutex);
  }
}


static void fifo_wait (gil_t *g, gil_thread *t, int why) {
  unsigned gen = g->policy_gen;
  fifo_waiter fw;
  gil_waiter *w = &fw.w;
  if (!g->locked && g->queue == NULL) return;  /* free, nobody before us */
  gil_want(g, t);
  gil_cond_init(&w->cond);
  fw.owed = (why == GIL_FROM_YIELD && !g->locked && g->holder == t &&
             g->queue != NULL) ? owed_now(g) : 0;
  /* Read only at the head: the holder took the GIL without queueing, or
  ** the taker before us plans its own turn here. */
  fw.turn_ends = g->taken_at + interval(g);
  w->queued = 1;
  enqueue(g, w);
  wait_turn(g, t, &fw, gen);
  /* Our turn. Owing a whole interval more than the next one in line, let
  ** the round go by. (Where all owe alike, as when the interval is shorter
  ** than a holder takes to answer, going round would change nothing.) */
  while (w->queued && gil_waits_on(g, t, gen) && w->next != NULL &&
         fw.owed >= ((fifo_waiter *)w->next)->owed + interval(g)) {
    fw.owed -= interval(g);
    dequeue(g, w);
    enqueue(g, w);
    pthread_cond_signal(&g->queue->cond);
    wait_turn(g, t, &fw, gen);
  }
  if (w->queued) {  /* else fifo_leave emptied the queue */
    int was_head = (g->queue == w);
    dequeue(g, w);
    if (was_head && g->queue) {
      /* The next one is at the head now: it keeps our turn, shortened by
      ** what we owe, or, if we leave without the GIL (parked), the
      ** holder's, as we kept it. */
      if (gil_waits_on(g, t, gen)) {
        double owed = fw.owed < interval(g) ? fw.owed : interval(g);
        head(g)->turn_ends = gil_monotonic() + interval(g) - owed;
      }
      else head(g)->turn_ends = fw.turn_ends;
      pthread_cond_signal(&g->queue->cond);
    }
  }
  pthread_cond_destroy(&w->cond);
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
