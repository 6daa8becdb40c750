/*
** gil_time.c: clocks and deadlines, for the GIL and for every module that
** waits. Timed waits use CLOCK_MONOTONIC, which setting the date does not
** move.
*/
#include <time.h>

#include "gil.h"


double gil_monotonic (void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}


void gil_deadline (struct timespec *ts, double secs) {
  struct timespec now;
  double at;
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (!(secs > 0)) secs = 0;  /* NaN too */
  if (secs > 1e9) secs = 1e9;
  at = now.tv_sec + now.tv_nsec / 1e9 + secs;
  ts->tv_sec = (time_t)at;
  ts->tv_nsec = (long)((at - (double)ts->tv_sec) * 1e9);
  if (ts->tv_nsec >= 1000000000L) { ts->tv_sec++; ts->tv_nsec -= 1000000000L; }
  if (ts->tv_nsec < 0) ts->tv_nsec = 0;
}


void gil_cond_init (pthread_cond_t *c) {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(c, &attr);
  pthread_condattr_destroy(&attr);
}
