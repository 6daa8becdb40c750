/*
** gil_old.c: the policy "old", CPython's GIL before 3.2 (and Python 2's).
**
** - The holder lets go every 'check_interval' VM instructions (100 by
**   default, sys.setcheckinterval) and at once tries to take the GIL back
**   (gil_tick). Nothing else: no switch interval, no drop request, no
**   forced switching, no priority. A waiter sleeps on 'cond' until it is
**   woken by a release and finds the GIL free.
**
** - On one core, the woken waiter runs only when the OS schedules it, by
**   which time the holder has long taken the GIL back: switches happen at
**   the OS's pace. On two or more cores the waiter wakes at once on
**   another core, finds the GIL taken again, sleeps again, is woken at the
**   next check: a battle of wake-ups that the holder nearly always wins,
**   each costing system calls. So two CPU-bound threads run slower on two
**   cores than one after the other, and an I/O-bound thread waits long to
**   get back in (David Beazley, "Understanding the GIL", 2009-2010).
**
** - A check can fall between any two instructions (the VM counts them all,
**   see vm/gilua_hook.c), so `temp = compteur; compteur = temp + 1` can be
**   cut in two and lose updates, as it did in Python 2. Counting costs:
**   the VM runs its instructions through the hook path while counting, so
**   it counts only while more than one thread exists.
*/
#include "gil.h"


static void old_wait (gil_t *g, gil_thread *t, int why) {
  unsigned gen = g->policy_gen;
  (void)why;
  while (g->locked && gil_waits_on(g, t, gen))
    pthread_cond_wait(&g->cond, &g->mutex);
}


static void old_released (gil_t *g, gil_thread *t, int why) {
  (void)t; (void)why;
  pthread_cond_signal(&g->cond);
}


/* A drop request left by another policy before the change is answered,
** and the holder queues up again with the others at once. */
static void old_yield (gil_t *g, gil_thread *t) {
  (void)g; (void)t;
}


/*
** The gap between Python 2's release and its acquire. Its lock was a
** semaphore, posted with no other lock held: a system call when a thread
** waits, during which a waiter already awake on another core may take it.
** So the waiter is signalled here with the mutex free, not under it
** (where a woken waiter could never get in before the holder is back).
*/
static void old_tick (gil_t *g, gil_thread *t) {
  (void)t;
  pthread_mutex_unlock(&g->mutex);
  pthread_cond_signal(&g->cond);
  pthread_mutex_lock(&g->mutex);
}


const gil_policy gil_policy_old = {
  "old", old_wait, old_released, old_yield, old_tick, NULL, NULL, NULL
};
