/*
** gilua_gil.c: the GIL as gilua.h offers it: releasing and taking it back
** around blocking code, the switch interval, the policy and its check
** interval, statistics and traces. The
** lock itself is gil/'s; this is the interpreter's side of it.
*/
#include <errno.h>

#include "gilua_vm.h"

/* The GIL is made once and never destroyed: threads of a closed
** interpreter stay parked on it (gil/gil.c). */
static gil_t the_gil;
static pthread_once_t gil_once = PTHREAD_ONCE_INIT;


static void make_gil (void) {
  gil_init(&the_gil, &gil_policy_new);
  gilua_hook_init();
}


/* The GIL exists before any interpreter does: a host may set the switch
** interval or read the (empty) statistics before gilua_open. */
gil_t *gilua_gil (void) {
  pthread_once(&gil_once, make_gil);
  return &the_gil;
}


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


void gilua_printstats (FILE *out) {
  gil_printstats(gilua_gil(), out);
}


int gilua_trace_start (const char *path) {
  return gil_trace_start(gilua_gil(), path);
}


int gilua_trace_stop (void) {
  return gil_trace_stop(gilua_gil());
}
