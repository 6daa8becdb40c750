/*
** gilua_time.c: clocks, sleeping and deadlines, shared by every module
** that waits.
*/
#include <errno.h>
#include <math.h>
#include <time.h>

#include "gilua_vm.h"


double gilua_monotonic (void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}


static struct timespec tospec (double secs) {
  struct timespec t;
  t.tv_sec = (time_t)secs;
  t.tv_nsec = (long)((secs - (double)t.tv_sec) * 1e9);
  if (t.tv_nsec >= 1000000000L) { t.tv_sec++; t.tv_nsec -= 1000000000L; }
  if (t.tv_nsec < 0) t.tv_nsec = 0;
  return t;
}


/* Restarts after signals (the GIL's drop signal may land here late) until
** the whole time has passed, unless Ctrl-C asks the main thread to stop. */
int gilua_nap (double secs) {
  struct timespec deadline, now;
  gilua_tstate *ts = gilua_ts();
  if (!(secs > 0)) return 0;
  if (secs > 1e9) secs = 1e9;
  clock_gettime(CLOCK_MONOTONIC, &now);
  deadline = tospec(now.tv_sec + now.tv_nsec / 1e9 + secs);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == EINTR) {
    if (ts && ts->interrupt) return 1;
  }
  return 0;
}


void gilua_deadline (struct timespec *ts, double secs) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (secs > 1e9) secs = 1e9;
  *ts = tospec(now.tv_sec + now.tv_nsec / 1e9 + secs);
}


void gilua_cond_init (pthread_cond_t *c) {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(c, &attr);
  pthread_condattr_destroy(&attr);
}


/*
** pthread_cond_wait with an optional deadline, that the main thread leaves
** when Ctrl-C is pressed. A signal handler cannot signal a condition
** variable, so while Ctrl-C raises KeyboardInterrupt (gilua_sigint) the
** main thread waits in slices and looks at its interrupt flag in between.
** Returns 0 (woken, perhaps spuriously), ETIMEDOUT or EINTR.
*/
#define SLICE 0.05

int gilua_condwait (pthread_cond_t *c, pthread_mutex_t *m,
                    const struct timespec *deadline) {
  gilua_tstate *ts = gilua_ts();
  struct timespec slice;
  int rc;
  if (!gilua_sigint_on() || ts == NULL || ts->ident != gilua_mainident())
    return deadline ? pthread_cond_timedwait(c, m, deadline)
                    : pthread_cond_wait(c, m);
  if (ts->interrupt) return EINTR;
  gilua_deadline(&slice, SLICE);
  if (deadline && (deadline->tv_sec < slice.tv_sec ||
      (deadline->tv_sec == slice.tv_sec && deadline->tv_nsec < slice.tv_nsec)))
    return pthread_cond_timedwait(c, m, deadline);
  rc = pthread_cond_timedwait(c, m, &slice);
  if (ts->interrupt) return EINTR;
  return rc == ETIMEDOUT ? 0 : rc;
}
