/*
** tap.h: TAP output for the C tests (each test file includes it once).
*/
#ifndef tap_h
#define tap_h

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static int ntest, nfail;

static void ok (int cond, const char *name) {
  ntest++;
  if (!cond) nfail++;
  printf("%sok %d - %s\n", cond ? "" : "not ", ntest, name);
  fflush(stdout);
}

static void diag (const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "# ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  fflush(stderr);
}

static double now (void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

#endif
