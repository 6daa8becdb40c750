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
** on a busy one) and by the holder's answer (its next instruction, or much
** later if the OS took its CPU away meanwhile). So the turns are planned
** as in deficit round robin: a thread forced off some time past its turn's
** end owes that time, and its next turn is shorter by as much (down to
** nothing; the rest is carried over to the turns after, up to MAXOWED
** intervals). Then a thread's turns add up to one interval each, whatever
** the delays, and CPU-bound threads get equal shares of the GIL's time,
** not only equal numbers of turns. A thread back from a blocking call owes
** nothing.
**
** The head keeps the holder's turn: when it ends and what the holder owes
** beyond it. The taker, as it leaves the queue, plans its own turn in the
** next waiter's record; a waiter that becomes head while the GIL is held
** by a thread that took it without queueing times that turn from when it
** was taken.
*/
#include "gil.h"


#define MAXOWED 10              /* intervals a thread may carry over */


/* A waiter: gil.h's, with what timing the turns needs. */
typedef struct fifo_waiter {
  gil_waiter w;                 /* first: the queue links these */
  double owed;                  /* how long its last turn ran past its end */
  double turn_ends;             /* at the head: when the holder's turn ends */
  double carry;                 /* at the head: what the holder owes beyond */
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


/* The holder's turn as the rule has it: an interval from when it took the
** GIL, owing nothing. */
static void plain_turn (gil_t *g, fifo_waiter *h) {
  h->turn_ends = g->taken_at + interval(g);
  h->carry = 0;
}


/* The turn of a thread that takes the GIL now, owing 'owed', kept by the
** head 'h': at most one interval is paid back in it. */
static void plan_turn (gil_t *g, fifo_waiter *h, double owed) {
  double iv = interval(g);
  if (!(owed > 0)) owed = 0;
  if (owed > MAXOWED * iv) owed = MAXOWED * iv;
  h->turn_ends = gil_monotonic() + (owed < iv ? iv - owed : 0);
  h->carry = owed > iv ? owed - iv : 0;
}


/* What the head sleeps before it asks the holder to let go. Once asked,
** the holder gets a whole interval more to answer (it may be in a long C
** call) before it is asked again. */
static double turn_left (gil_t *g) {
  if (gil_drop_requested(g)) return interval(g);
  return head(g)->turn_ends - gil_monotonic();
}


static void fifo_wait (gil_t *g, gil_thread *t, int why) {
  unsigned gen = g->policy_gen;
  fifo_waiter fw;
  gil_waiter *w = &fw.w;
  if (!g->locked && g->queue == NULL) return;  /* free, nobody before us */
  gil_want(g, t);
  gil_cond_init(&w->cond);
  /* Forced off this moment: the head, which asked, kept the turn. */
  fw.owed = (why == GIL_FROM_YIELD && !g->locked && g->holder == t &&
             g->queue != NULL)
          ? gil_monotonic() - head(g)->turn_ends + head(g)->carry : 0;
  w->queued = 1;
  enqueue(g, w);
  if (g->queue == w) plain_turn(g, &fw);
  while ((g->locked || g->queue != w) && gil_waits_on(g, t, gen)) {
    if (g->queue == w)
      gil_wait_step(g, t, &w->cond, turn_left(g));
    else pthread_cond_wait(&w->cond, &g->mutex);
  }
  if (w->queued) {  /* else fifo_leave emptied the queue */
    int was_head = (g->queue == w);
    dequeue(g, w);
    if (was_head && g->queue) {
      /* The next one is at the head now: it keeps our turn, or, if we
      ** leave without the GIL (parked), the holder's as we kept it. */
      if (gil_waits_on(g, t, gen)) plan_turn(g, head(g), fw.owed);
      else {
        head(g)->turn_ends = fw.turn_ends;
        head(g)->carry = fw.carry;
      }
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
