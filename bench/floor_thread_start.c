/*
** floor_thread_start.c: the floor of the thread_start workload. The same
** number of threads as bench/thread_start.lua, each running an empty
** function, created and joined by bare pthread_create + pthread_join with
** the default attributes: what no interpreter's Thread can beat.
** Prints time=<seconds> and check=<threads>, as a workload does.
*/
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NB 2000

static void *nothing (void *arg) {
  return arg;
}

static double now (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main (void) {
  double t0 = now();
  int i;
  for (i = 0; i < NB; i++) {
    pthread_t t;
    if (pthread_create(&t, NULL, nothing, NULL) != 0 ||
        pthread_join(t, NULL) != 0) {
      fprintf(stderr, "floor_thread_start: thread %d failed\n", i);
      return EXIT_FAILURE;
    }
  }
  printf("time=%.6f\n", now() - t0);
  printf("check=%d\n", NB);
  return EXIT_SUCCESS;
}
