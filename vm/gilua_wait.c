/*
** gilua_wait.c: the one interruptible wait on descriptors, used by every
** module that polls (multiprocessing, subprocess, asyncio).
**
** A Ctrl-C sets the main thread's flag from the signal handler and cuts a
** blocking call short with EINTR. The flag is looked at before each wait,
** and an EINTR for any other signal (the GIL's drop requests of a moment
** ago, a SIGCHLD) just waits again for what is left. A Ctrl-C that lands
** between the look and the wait must not be lost in a wait without end:
** so the main thread blocks SIGINT while it looks and lets the wait
** unblock it (ppoll's and epoll_pwait's mask): a pending SIGINT then cuts
** the wait short at once. Other threads never see SIGINT (it goes to the
** main thread) and skip that.
*/
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <time.h>

#include "gilua_vm.h"


double gilua_deadline_after (double timeout) {
  if (timeout < 0) return GILUA_FOREVER;
  return gilua_monotonic() + timeout;
}


/* Milliseconds left before 'deadline', rounded up so that a wait never
** ends before it; -1: no deadline. A day at most at a time (the loop
** waits again for the rest). */
static int ms_left (double deadline) {
  double left;
  if (deadline < 0) return -1;
  left = deadline - gilua_monotonic();
  if (!(left > 0)) return 0;
  if (left > 86400.0) return 86400000;
  return (int)ceil(left * 1000.0);
}


/* Whether the calling thread is the one Ctrl-C interrupts. */
static int gets_sigint (void) {
  gilua_tstate *ts = gilua_ts();
  return ts != NULL && ts->gt.ident == gilua_mainident();
}


int gilua_waitwith (gilua_waitfn wait, void *ud, double deadline) {
  sigset_t block, old;
  int r, en, masked = gets_sigint();
  if (masked) {
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
  }
  for (;;) {
    if (masked && gilua_interrupt_pending()) {
      r = -1;
      errno = EINTR;
      break;
    }
    r = wait(ud, ms_left(deadline), masked ? &old : NULL);
    if (r >= 0 || errno != EINTR) break;
  }
  if (masked) {
    en = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = en;
  }
  return r;
}


typedef struct pollset { struct pollfd *fds; int n; } pollset;

static int ppoll_ms (void *ud, int ms, const sigset_t *mask) {
  pollset *ps = ud;
  struct timespec t;
  t.tv_sec = ms / 1000;
  t.tv_nsec = (long)(ms % 1000) * 1000000L;
  return ppoll(ps->fds, (nfds_t)ps->n, ms < 0 ? NULL : &t, mask);
}


int gilua_waitfds (struct pollfd *fds, int n, double deadline) {
  pollset ps;
  ps.fds = fds;
  ps.n = n;
  return gilua_waitwith(ppoll_ms, &ps, deadline);
}


int gilua_poll (lua_State *L, struct pollfd *fds, int n, double deadline,
                const char *call) {
  int r, en;
  if (deadline >= 0 && deadline <= gilua_monotonic()) {
    /* nothing to wait for: a look, keeping the GIL */
    do r = poll(fds, (nfds_t)n, 0); while (r < 0 && errno == EINTR);
    en = errno;
  }
  else {
    GILUA_BEGIN_ALLOW_THREADS(L)
      r = gilua_waitfds(fds, n, deadline);
      en = errno;
    GILUA_END_ALLOW_THREADS(L)
  }
  /* Also a Ctrl-C that came while the descriptors became ready. */
  gilua_checkinterrupt(L);
  if (r < 0 && en != EINTR) return gilua_oserror(L, en, call, NULL);
  return r < 0 ? 0 : r;
}
