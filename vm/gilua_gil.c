/*
** gilua_gil.c: the GIL as gilua.h offers it: releasing and taking it back
** around blocking code, the switch interval, the policy and its check
** interval, statistics and traces. The lock itself is gil/'s; this is the
** interpreters' side of it.
**
** Each interpreter has its GIL; the calls of gilua.h act on the GIL of
** the interpreter the calling thread runs in (the main one for a thread
** that runs in none). A trace is the process's: it records every
** interpreter's GIL into one file, each interpreter a group of lanes. The
** main interpreter's GIL owns the file; the others join in while they are
** open, and hand their events over when they close.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gilua_vm.h"

/* The statistics of this many closed sub-interpreters are kept for
** gilua_printstats; older ones are only counted. */
#define KEPT 32


/*
** Releases nest (see gilua.h): only the outermost pair lets the GIL go and
** takes it back. The depth is the owner's alone, so it needs no lock.
*/
void gilua_release (lua_State *T) {
  gilua_tstate *ts = gilua_ts();
  (void)T;
  if (ts != NULL && ts->released++ == 0)
    gil_release(&ts->gt);
}


/* errno survives: callers read the blocking call's errno after
** GILUA_END_ALLOW_THREADS, and taking the GIL may touch it. */
void gilua_acquire (lua_State *T) {
  gilua_tstate *ts = gilua_ts();
  int saved = errno;
  (void)T;
  if (ts != NULL && ts->released > 0 && --ts->released == 0) {
    gil_acquire(&ts->gt);
    if (gilua_hook_wanted(ts)) gilua_hook_sync(ts);
  }
  errno = saved;
}


int gilua_hasgil (void) {
  gil_thread *t = gil_self();
  return t != NULL && t->holds;
}


void gilua_setthreadname (const char *name) {
  if (gil_self() != NULL && name != NULL) gil_setname(gil_self(), name);
}


void gilua_setswitchinterval (double seconds) {
  gil_setinterval(gilua_gil(), seconds);
}


double gilua_getswitchinterval (void) {
  return gil_getinterval(gilua_gil());
}


int gilua_setgilpolicy (const char *name) {
  const gil_policy *p = name ? gil_findpolicy(name) : NULL;
  gilua_tstate *ts = gilua_ts();
  if (p == NULL) {
    errno = EINVAL;
    return -1;
  }
  if (gil_sched_on(gilua_gil())) {  /* the scheduler decides */
    errno = EBUSY;
    return -1;
  }
  gil_setpolicy(gilua_gil(), p);
  /* The caller's own VM may have to start counting at once. */
  if (ts != NULL && ts->gt.holds && gilua_hook_wanted(ts))
    gilua_hook_sync(ts);
  return 0;
}


const char *gilua_getgilpolicy (void) {
  return gil_getpolicy(gilua_gil())->name;
}


const char *gilua_gilpolicyname (int i) {
  int n = 0;
  while (gil_policies[n]) n++;
  return (i >= 0 && i < n) ? gil_policies[i]->name : NULL;
}


void gilua_setcheckinterval (int n) {
  gil_setcheckinterval(gilua_gil(), n);
}


int gilua_getcheckinterval (void) {
  return gil_checkinterval(gilua_gil());
}


void gilua_getstats (gilua_stats *st) {
  gil_getstats(gilua_gil(), st);
}


int gilua_getthreadstats (gilua_threadstats *threads, int max) {
  return gil_threadstats(gilua_gil(), threads, max);
}


void gilua_resetstats (void) {
  gil_resetstats(gilua_gil());
}


/*
** {======================================================
** What is kept of interpreters that closed
** =======================================================
*/

static pthread_mutex_t keep = PTHREAD_MUTEX_INITIALIZER;
static int tracing;                     /* a process trace runs (keep) */
static gil_tgroup *left;                /* closed while it ran (keep) */
static int nleft, leftsize;
typedef struct figures {                /* a closed interpreter's */
  char name[80];
  gilua_stats st;
  gilua_threadstats *threads;
  int n;
  double interval;
  const gil_policy *policy;
  int check_interval;
} figures;

static figures *closed[KEPT];           /* for the summary (keep) */
static int nclosed, forgotten;


static void label (char *buf, size_t n, gilua_interp *I) {
  if (I->id == 0) snprintf(buf, n, "interpreter 0 (main)");
  else snprintf(buf, n, "interpreter %d", (int)I->id);
}


static void forget (figures *f);

void gilua_gil_opened (gilua_interp *I) {
  int i;
  pthread_mutex_lock(&keep);
  if (tracing) gil_trace_begin(&I->gil);
  if (I->id == 0) {  /* a new main interpreter: figures start again */
    for (i = 0; i < nclosed; i++) forget(closed[i]);
    nclosed = forgotten = 0;
  }
  pthread_mutex_unlock(&keep);
}


static void heading (char *buf, size_t n, gilua_interp *I) {
  char name[64];
  label(name, sizeof name, I);
  snprintf(buf, n, "%s (%s):", name, I->whence);
}


/* I's figures, taken now (a copy to forget), or NULL. */
static figures *take (gilua_interp *I) {
  figures *f = calloc(1, sizeof *f);
  int n;
  if (f == NULL) return NULL;
  heading(f->name, sizeof f->name, I);
  gil_getstats(&I->gil, &f->st);
  n = gil_threadstats(&I->gil, NULL, 0);
  if ((f->threads = calloc((size_t)(n > 0 ? n : 1), sizeof *f->threads)) == NULL) {
    free(f);
    return NULL;
  }
  f->n = gil_threadstats(&I->gil, f->threads, n);
  if (f->n > n) f->n = n;
  f->interval = gil_getinterval(&I->gil);
  f->policy = gil_getpolicy(&I->gil);
  f->check_interval = gil_checkinterval(&I->gil);
  return f;
}


static void forget (figures *f) {
  free(f->threads);
  free(f);
}


static void print_figures (FILE *out, const figures *f) {
  fprintf(out, "%s\n", f->name);
  gil_printfigures(out, &f->st, f->threads, f->n, f->interval, f->policy,
                   f->check_interval);
}


/* I closes (no other thread runs there): its events join the trace, its
** figures are kept for the summary. The main interpreter's stay in its
** GIL, which owns the trace and keeps its figures until the next one. */
void gilua_gil_closing (gilua_interp *I) {
  figures *kept;
  if (I->id == 0) return;
  kept = take(I);
  pthread_mutex_lock(&keep);
  if (tracing && nleft == leftsize) {
    int n = leftsize ? 2 * leftsize : 8;
    gil_tgroup *g = realloc(left, (size_t)n * sizeof *g);
    if (g != NULL) {
      left = g;
      leftsize = n;
    }
  }
  if (tracing) {
    double t0, t1;
    gil_tbuf *b = gil_trace_end(&I->gil, &t0, &t1);
    if (nleft < leftsize) {
      gil_tgroup *g = &left[nleft++];
      g->id = (int)I->id;
      label(g->name, sizeof g->name, I);
      g->bufs = b;
      g->interval = gil_getinterval(&I->gil);
      g->policy = I->gil.trace_policy->name;
      g->check_interval = gil_checkinterval(&I->gil);
    }
    else gil_trace_free(b);
  }
  if (kept != NULL) {
    if (nclosed == KEPT) {
      forget(closed[0]);
      memmove(closed, closed + 1, (KEPT - 1) * sizeof *closed);
      nclosed--;
      forgotten++;
    }
    closed[nclosed++] = kept;
  }
  pthread_mutex_unlock(&keep);
}

/* }====================================================== */


/*
** {======================================================
** Summaries and traces of every interpreter
** =======================================================
*/

#define MAXLIST 256

/* One table for the only interpreter there ever was (the common case:
** the table is as it always was); else one per interpreter, the calling
** thread's first, then the others open, then those that closed. */
void gilua_printstats (FILE *out) {
  gilua_interp *all[MAXLIST], *me = gilua_interp_current();
  int n = gilua_interp_list(all, MAXLIST), i;
  if (n > MAXLIST) n = MAXLIST;
  if (me == NULL) me = gilua_interp_main();
  pthread_mutex_lock(&keep);
  if (nclosed == 0 && n <= 1) {
    pthread_mutex_unlock(&keep);
    gil_printstats(gilua_gil(), out);
    return;
  }
  pthread_mutex_unlock(&keep);
  for (i = -1; i < n; i++) {
    gilua_interp *I = (i < 0) ? me : all[i];
    figures *f;
    if (i >= 0 && I == me) continue;
    if ((f = take(I)) != NULL) {
      print_figures(out, f);
      forget(f);
    }
  }
  pthread_mutex_lock(&keep);
  if (forgotten)
    fprintf(out, "(%d more interpreters closed)\n", forgotten);
  for (i = 0; i < nclosed; i++) print_figures(out, closed[i]);
  pthread_mutex_unlock(&keep);
  fflush(out);
}


int gilua_trace_start (const char *path) {
  gilua_interp *all[MAXLIST], *M = gilua_interp_main();
  int n, i, rc;
  pthread_mutex_lock(&keep);
  rc = gil_trace_start(&M->gil, path);
  if (rc == 0) {
    tracing = 1;
    n = gilua_interp_list(all, MAXLIST);
    for (i = 0; i < n && i < MAXLIST; i++)
      if (all[i] != M) gil_trace_begin(&all[i]->gil);
  }
  pthread_mutex_unlock(&keep);
  return rc;
}


int gilua_trace_stop (void) {
  gilua_interp *all[MAXLIST], *M = gilua_interp_main();
  int n, i, rc, e;
  pthread_mutex_lock(&keep);
  if (!tracing) {
    pthread_mutex_unlock(&keep);
    return 1;
  }
  tracing = 0;
  n = gilua_interp_list(all, MAXLIST);
  for (i = 0; i < n && i < MAXLIST; i++) {
    double t0, t1;
    gil_tbuf *b;
    if (all[i] == M || (b = gil_trace_end(&all[i]->gil, &t0, &t1)) == NULL)
      continue;
    if (nleft == leftsize) {
      int size = leftsize ? 2 * leftsize : 8;
      gil_tgroup *g = realloc(left, (size_t)size * sizeof *g);
      if (g == NULL) {
        gil_trace_free(b);
        continue;
      }
      left = g;
      leftsize = size;
    }
    left[nleft].id = (int)all[i]->id;
    label(left[nleft].name, sizeof left[nleft].name, all[i]);
    left[nleft].bufs = b;
    left[nleft].interval = gil_getinterval(&all[i]->gil);
    left[nleft].policy = all[i]->gil.trace_policy->name;
    left[nleft].check_interval = gil_checkinterval(&all[i]->gil);
    nleft++;
  }
  rc = gil_trace_stop(&M->gil, "interpreter 0 (main)", left, nleft);
  e = errno;
  nleft = 0;
  pthread_mutex_unlock(&keep);
  errno = e;
  return rc;
}


char *gilua_trace_path (void) {
  return gil_trace_path(&gilua_interp_main()->gil);
}

/* }====================================================== */

