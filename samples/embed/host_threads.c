/*
** host_threads.c: a C host whose own pthreads run Lua under the GIL, to
** see GIL contention on the spot.
**
**   cc host_threads.c $(pkg-config --cflags --libs gilua) -o host_threads
**   ./host_threads [-n THREADS] [-t FILE.html]
**
** Three rounds, each run first by one host thread, then by THREADS of them
** at once (every thread attaches with gilua_attach, runs a Lua function and
** detaches):
**
**   1. a CPU-bound Lua function: under the GIL, THREADS threads take about
**      THREADS times as long as one (each waits while the others hold it);
**   2. a function that mostly waits in a C call wrapped in
**      GILUA_BEGIN/END_ALLOW_THREADS: the waits overlap, THREADS threads
**      take about as long as one;
**   3. the same C call made while holding the GIL (the mistake the macros
**      are for): the waits are serialised again.
**
** For each round it prints the wall times (the median of three tries) and, per thread, the time spent
** holding and waiting for the GIL, its acquisitions and the drop requests
** it made and received (gilua_getthreadstats). The last lines, "name=value",
** are for scripts. With -t, the whole run is also drawn as a timeline page.
*/
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lua.h>
#include <lauxlib.h>

#include <gilua.h>

#define MAXTHREADS 64

static lua_State *L;            /* the interpreter (its main state) */


static double now (void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}


/* Sleeps 'secs', whatever signal comes in the middle: a thread that holds
** the GIL receives one each time another thread asks it to let go. */
static void wait_for (double secs) {
  struct timespec t;
  double end;
  clock_gettime(CLOCK_MONOTONIC, &t);
  end = t.tv_sec + t.tv_nsec / 1e9 + secs;
  t.tv_sec = (time_t)end;
  t.tv_nsec = (long)((end - (double)t.tv_sec) * 1e9);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR)
    ;
}


/* host.wait(seconds): a blocking call done right, the GIL released. */
static int l_wait (lua_State *T) {
  double secs = luaL_checknumber(T, 1);
  GILUA_BEGIN_ALLOW_THREADS(T)
    wait_for(secs);                    /* no Lua in here */
  GILUA_END_ALLOW_THREADS(T)
  return 0;
}


/* host.wait_holding(seconds): the same, keeping the GIL. */
static int l_wait_holding (lua_State *T) {
  wait_for(luaL_checknumber(T, 1));
  return 0;
}


static const char *const lua_code =
  "local host = ...\n"
  "function spin(n)                 -- pure Lua CPU work\n"
  "  local s = 0\n"
  "  for i = 1, n do s = s + i % 7 end\n"
  "  return s\n"
  "end\n"
  "function io_bound(rounds, n, secs, wait)\n"
  "  for _ = 1, rounds do\n"
  "    spin(n)                      -- a little CPU ...\n"
  "    host[wait](secs)             -- ... then a blocking C call\n"
  "  end\n"
  "end\n";


/* What one round asks of each thread: a global Lua function and its
** arguments. */
typedef struct Job {
  const char *fn;
  lua_Integer a, b;
  double secs;
  const char *wait;
} Job;

typedef struct Worker {
  pthread_t th;
  int id;
  const Job *job;
  int status;
  char err[200];
} Worker;


static void *worker (void *arg) {
  Worker *w = arg;
  char name[32];
  lua_State *T = gilua_attach(L);      /* own state; holds the GIL now */
  if (T == NULL) {
    w->status = -1;
    snprintf(w->err, sizeof w->err, "gilua_attach failed");
    return NULL;
  }
  snprintf(name, sizeof name, "host-%d", w->id);
  gilua_setthreadname(name);
  lua_getglobal(T, w->job->fn);
  lua_pushinteger(T, w->job->a);
  lua_pushinteger(T, w->job->b);
  lua_pushnumber(T, w->job->secs);
  lua_pushstring(T, w->job->wait ? w->job->wait : "wait");
  w->status = gilua_pcall(T, 4, 0);
  if (w->status != LUA_OK) {           /* an error raised in Lua */
    snprintf(w->err, sizeof w->err, "%s", luaL_tolstring(T, -1, NULL));
    lua_pop(T, 2);
  }
  gilua_detach(T);                     /* GIL released, T forgotten */
  return NULL;
}


/* Runs 'job' in n host threads at once; returns the wall time. The main
** thread lets the GIL go meanwhile: joining is a blocking call too. */
static double run (int n, const Job *job) {
  Worker w[MAXTHREADS];
  double t0;
  int i;
  gilua_resetstats();
  t0 = now();
  GILUA_BEGIN_ALLOW_THREADS(L)
    for (i = 0; i < n; i++) {
      w[i].id = i + 1;
      w[i].job = job;
      w[i].status = 0;
      pthread_create(&w[i].th, NULL, worker, &w[i]);
    }
    for (i = 0; i < n; i++) pthread_join(w[i].th, NULL);
  GILUA_END_ALLOW_THREADS(L)
  t0 = now() - t0;
  for (i = 0; i < n; i++)
    if (w[i].status != LUA_OK) {
      fprintf(stderr, "host-%d: %s\n", i + 1, w[i].err);
      exit(1);
    }
  return t0;
}


/* The figures of the host threads of the round that just ran. */
static void print_threads (void) {
  gilua_threadstats ts[MAXTHREADS + 8];
  gilua_stats st;
  int n = gilua_getthreadstats(ts, MAXTHREADS + 8), i;
  gilua_getstats(&st);
  if (n > MAXTHREADS + 8) n = MAXTHREADS + 8;
  printf("    %-8s %10s %10s %9s %11s %11s\n", "thread", "holding", "waiting",
         "acquired", "drops made", "drops recvd");
  for (i = 0; i < n; i++) {
    if (strncmp(ts[i].name, "host-", 5) != 0) continue;
    printf("    %-8s %8.3f s %8.3f s %9lu %11lu %11lu\n", ts[i].name,
           ts[i].hold_time, ts[i].wait_time, ts[i].acquisitions,
           ts[i].drop_requests_made, ts[i].drop_requests_received);
  }
  printf("    GIL switches: %lu (%lu forced by a drop request)\n",
         st.switches, st.forced_switches);
}


/* How many spin() turns take about 'secs' here. */
static lua_Integer calibrate (double secs) {
  lua_Integer n = 100000;
  for (;;) {
    double t0 = now(), dt;
    lua_getglobal(L, "spin");
    lua_pushinteger(L, n);
    if (gilua_pcall(L, 1, 0) != LUA_OK) {
      gilua_report(L);
      exit(1);
    }
    dt = now() - t0;
    if (dt > 0.05) return (lua_Integer)(n * secs / dt);
    n *= 2;
  }
}


/*
** One thread, then all of them, three times over; the pair whose ratio is
** the median counts. A machine whose speed drifts (a shared one) then
** changes both runs of a pair alike, and a neighbour's burst spoils one
** pair, not the result. The per-thread figures are those of the last run.
*/
#define REPS 3

static double round_of (const char *title, int nthreads, const Job *job) {
  double one[REPS], many[REPS];
  int rep, i, m = 0;
  printf("\n%s\n", title);
  for (rep = 0; rep < REPS; rep++) {
    one[rep] = run(1, job);
    many[rep] = run(nthreads, job);
  }
  for (i = 0; i < REPS; i++) {  /* the median ratio's pair */
    int below = 0, j;
    for (j = 0; j < REPS; j++)
      below += many[j] / one[j] < many[i] / one[i];
    if (below == REPS / 2) m = i;
  }
  printf("  1 thread:  %.3f s\n", one[m]);
  printf("  %d threads: %.3f s = %.2fx one thread\n", nthreads, many[m],
         many[m] / one[m]);
  print_threads();
  return many[m] / one[m];
}


int main (int argc, char **argv) {
  int nthreads = 4, i;
  const char *timeline = NULL;
  double cpu, released, held;
  lua_Integer n;
  Job job;
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) nthreads = atoi(argv[++i]);
    else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) timeline = argv[++i];
    else {
      fprintf(stderr, "usage: %s [-n THREADS] [-t FILE.html]\n", argv[0]);
      return 2;
    }
  }
  if (nthreads < 1 || nthreads > MAXTHREADS) nthreads = 4;

  L = gilua_open();                    /* this thread holds the GIL now */
  if (L == NULL) {
    fprintf(stderr, "cannot open the interpreter\n");
    return 1;
  }
  if (luaL_loadstring(L, lua_code) != LUA_OK) {
    gilua_report(L);
    return 1;
  }
  lua_newtable(L);                     /* the 'host' table of C functions */
  lua_pushcfunction(L, l_wait);
  lua_setfield(L, -2, "wait");
  lua_pushcfunction(L, l_wait_holding);
  lua_setfield(L, -2, "wait_holding");
  if (gilua_pcall(L, 1, 0) != LUA_OK) {
    gilua_report(L);
    return 1;
  }
  if (timeline && gilua_trace_start(timeline) != 0) {
    fprintf(stderr, "cannot write %s: %s\n", timeline, strerror(errno));
    return 1;
  }

  n = calibrate(0.25);
  printf("%d host threads, switch interval %.1f ms; spin(%lld) takes about "
         "0.25 s\n", nthreads, gilua_getswitchinterval() * 1e3, (long long)n);

  memset(&job, 0, sizeof job);
  job.fn = "spin";
  job.a = n;
  cpu = round_of("1. CPU-bound Lua: spin() in every thread", nthreads, &job);

  job.fn = "io_bound";
  job.a = 20;                          /* 20 rounds of ... */
  job.b = n / 250;                     /* ... about 1 ms of CPU ... */
  job.secs = 0.01;                     /* ... and a 10 ms blocking call */
  job.wait = "wait";
  released = round_of("2. Mostly blocking in C, GIL released around the "
                      "call (GILUA_BEGIN/END_ALLOW_THREADS)", nthreads, &job);
  job.wait = "wait_holding";
  held = round_of("3. The same blocking call made while holding the GIL",
                  nthreads, &job);

  if (timeline) {
    if (gilua_trace_stop() != 0)
      fprintf(stderr, "cannot write %s: %s\n", timeline, strerror(errno));
    else
      printf("\ntimeline: %s\n", timeline);
  }
  printf("\nthreads=%d\ncpu_ratio=%.3f\nreleased_ratio=%.3f\nheld_ratio=%.3f\n",
         nthreads, cpu, released, held);
  gilua_close(L);
  return 0;
}
