/*
** gil_signal.c: the signals of the GIL, and the one place that owns
** Ctrl-C: the SIGINT handler, the per-thread interrupt flag, the check,
** and the waits that Ctrl-C must be able to cut short.
**
** Drop requests. A waiter that wants the holder to let go must not touch
** the holder's interpreter: the holder reads its own state while it runs.
** So it sends the holder's OS thread a signal (SIGURG, whose default
** action is to be ignored and which debuggers pass through quietly), and
** the handler, which runs on that very thread, calls the interpreter's
** request callback (gil_on_request): the layer above arms a one-shot hook
** there, so that the VM stops at its next instruction and answers. This is
** how Go preempts a goroutine, and how lua.c stops a script on Ctrl-C.
**
** Under ThreadSanitizer (GIL_POLL_HOOK, see the Makefile) no signal is
** sent: TSan holds asynchronous signals back until the thread next calls
** into libc, which a CPU-bound Lua loop never does. There the layer above
** polls the request instead (vm/gilua_hook.c).
**
** Ctrl-C belongs to the main thread, as in Python: the handler, wherever
** it runs, passes the signal on to the main thread, which marks itself
** interrupted and calls the same request callback, so that running Lua
** code raises KeyboardInterrupt at its next instruction. A handler cannot
** signal a condition variable, so the main thread waits in slices while
** Ctrl-C is on, and looks at its flag in between (gil_condwait); sleeps
** and system calls are cut short by the signal itself (no SA_RESTART).
*/
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "gil.h"

#define GIL_DROP_SIGNAL SIGURG

__thread gil_thread *gil_self_ __attribute__((tls_model("initial-exec")));

static pthread_t main_thread;
static gil_request_fn on_request;
/* Whether Ctrl-C raises KeyboardInterrupt: set by the main thread, read by
** any thread that waits, GIL or not; hence atomic. */
static atomic_int sigint_on;


void gil_on_request (gil_request_fn fn) {
  on_request = fn;
}


static void on_drop_signal (int sig) {
  int saved = errno;
  gil_thread *t = gil_self();
  (void)sig;
  if (t && on_request) on_request(t);
  errno = saved;
}


static void on_sigint (int sig) {
  int saved = errno;
  gil_thread *t = gil_self();
  if (!pthread_equal(pthread_self(), main_thread)) {
    pthread_kill(main_thread, sig);
  } else if (t) {
    t->interrupt = 1;
    if (on_request) on_request(t);
  }
  errno = saved;
}


void gil_signal_init (void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_drop_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(GIL_DROP_SIGNAL, &sa, NULL);
  main_thread = pthread_self();
}


void gil_signal_post (gil_thread *holder) {
#ifndef GIL_POLL_HOOK
  pthread_kill(holder->thread, GIL_DROP_SIGNAL);
#else
  (void)holder;
#endif
}


/*
** {======================================================
** Ctrl-C
** =======================================================
*/

void gil_sigint (int on) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on ? on_sigint : SIG_DFL;
  sigemptyset(&sa.sa_mask);
  /* No SA_RESTART: a sleeping main thread must wake up to be interrupted. */
  sigaction(SIGINT, &sa, NULL);
  atomic_store_explicit(&sigint_on, on, memory_order_relaxed);
}


int gil_sigint_on (void) {
  return atomic_load_explicit(&sigint_on, memory_order_relaxed);
}


/* As if Ctrl-C were pressed; ignored, as SIGINT would be, while Ctrl-C
** is not handled. */
void gil_setinterrupt (void) {
  if (gil_sigint_on()) pthread_kill(main_thread, SIGINT);
}


int gil_interrupt_pending (void) {
  gil_thread *t = gil_self();
  return t != NULL && t->interrupt;
}


int gil_interrupt_take (void) {
  gil_thread *t = gil_self();
  if (t == NULL || !t->interrupt) return 0;
  t->interrupt = 0;
  return 1;
}


#define SLICE 0.05

static int before (const struct timespec *a, const struct timespec *b) {
  return a->tv_sec < b->tv_sec ||
         (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}


int gil_condwait (pthread_cond_t *c, pthread_mutex_t *m,
                  const struct timespec *deadline) {
  gil_thread *t = gil_self();
  struct timespec slice;
  int rc;
  if (!gil_sigint_on() || t == NULL ||
      !pthread_equal(pthread_self(), main_thread))
    return deadline ? pthread_cond_timedwait(c, m, deadline)
                    : pthread_cond_wait(c, m);
  if (t->interrupt) return EINTR;
  gil_deadline(&slice, SLICE);
  if (deadline && before(deadline, &slice))
    return pthread_cond_timedwait(c, m, deadline);
  rc = pthread_cond_timedwait(c, m, &slice);
  if (t->interrupt) return EINTR;
  return rc == ETIMEDOUT ? 0 : rc;
}


/* Restarts after signals (the GIL's drop signal may land here late) until
** the whole time has passed, unless Ctrl-C asks the main thread to stop.
** A relative nanosleep towards a monotonic deadline rather than an
** absolute clock_nanosleep: ThreadSanitizer runs the handlers of signals
** that arrive during nanosleep at once, but holds them back during
** clock_nanosleep, which would then sleep through a Ctrl-C. */
int gil_nap (double secs) {
  gil_thread *t = gil_self();
  double until;
  if (!(secs > 0)) return 0;
  if (secs > 1e9) secs = 1e9;
  until = gil_monotonic() + secs;
  for (;;) {
    double left = until - gil_monotonic();
    struct timespec ts;
    if (left <= 0) return 0;
    ts.tv_sec = (time_t)left;
    ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
    if (nanosleep(&ts, NULL) == 0) continue;  /* the clock decides */
    if (t && t->interrupt) return 1;
  }
}

/* }====================================================== */
