/*
** gil.h: the Global Interpreter Lock.
*/
#ifndef gil_h
#define gil_h

#include <stdatomic.h>
#include <stdio.h>

#include "gilua_vm.h"

/* Set by a thread that has waited a whole switch interval for the GIL
** without seeing it change hands; cleared by whoever takes the GIL next.
** The holder checks it at safe points: a relaxed load, nothing more. */
extern atomic_int gil_drop_request;

#define gil_drop_requested() \
  atomic_load_explicit(&gil_drop_request, memory_order_relaxed)

void gil_init(gilua_tstate *ts);     /* create; 'ts' holds it on return */
void gil_acquire(gilua_tstate *ts);
void gil_release(gilua_tstate *ts);  /* around a blocking call */
void gil_yield(gilua_tstate *ts);    /* answer a drop request */
void gil_finalize(gilua_tstate *ts); /* no other thread takes the GIL again */
void gil_destroy(void);              /* after the finalizer's gil_exit */

void gil_register(gilua_tstate *ts);   /* GIL mutex taken inside */
/* The thread leaves: releases the GIL if it holds it, keeps its figures
** among the finished threads' and hands its trace events over. */
void gil_exit(gilua_tstate *ts);
void gil_after_fork(gilua_tstate *ts); /* in the child: 'ts' is alone */

void gil_setinterval(double secs);
double gil_getinterval(void);

/* Statistics. gil_threadstats fills up to 'max' records, oldest thread
** first, and returns how many there are. */
void gil_getstats(gilua_stats *st);
int gil_threadstats(gilua_threadstats *out, int max);
void gil_resetstats(void);
void gil_setname(gilua_tstate *ts, const char *name);
int gil_setname_ident(unsigned long ident, const char *name);

/*
** Tracing. While a trace runs, every thread state owns a buffer of raw
** events, appended to by its owner under the GIL mutex (which the GIL's
** code holds at those moments anyway), so recording costs no extra lock
** and no formatting. gil_trace_end takes every buffer back, those of the
** threads that left meanwhile included, and gil/gil_trace.c turns them into
** Chrome trace-event JSON.
*/
enum {
  GIL_BLOCKED,      /* not holding and not wanting it: in a blocking call */
  GIL_WAITING,      /* wants the GIL */
  GIL_RUNNING       /* holds it */
};

enum {
  EV_STATE,         /* the trace starts; arg: the thread's gstate */
  EV_WANT,          /* starts waiting for the GIL */
  EV_TAKE,          /* takes the GIL */
  EV_REL_BLOCK,     /* releases it around a blocking call */
  EV_REL_FORCED,    /* lets go because of a drop request */
  EV_REL_EXIT,      /* leaves (thread end, interpreter closed) */
  EV_DROP,          /* posts a drop request; arg: the holder's native id */
  EV_END            /* the trace stops */
};

typedef struct gil_event {
  double t;                     /* CLOCK_MONOTONIC, seconds */
  unsigned long arg;
  int kind;
} gil_event;

/* A thread's first chunk is small (a trace may see thousands of short-lived
** threads), the next ones twice as big, up to GIL_CHUNK events. */
#define GIL_CHUNK0 32
#define GIL_CHUNK 4096

typedef struct gil_chunk {
  struct gil_chunk *next;
  int n, size;
  gil_event ev[];
} gil_chunk;

typedef struct gil_tbuf {       /* one thread's events */
  gil_chunk *first, *last;
  unsigned long seq;            /* the thread's registration order */
  long tid;                     /* native id */
  unsigned long lost;           /* events dropped for lack of memory */
  char name[64];                /* filled when the buffer is handed over */
  struct gil_tbuf *next;
} gil_tbuf;

int gil_trace_begin(void);      /* -1 if a trace runs already */
/* Stops recording and returns every buffer, oldest thread first (NULL if
** no trace was running); the caller frees them with gil_trace_free. */
gil_tbuf *gil_trace_end(double *t0, double *t1);
void gil_trace_free(gil_tbuf *b);
void gil_trace_forget(void);    /* fork child: the parent's trace is not ours */
char *gil_trace_path(void);     /* a copy of the running trace's path, or NULL */

/* gil_signal.c: drop requests and Ctrl-C reach the holder's running
** coroutine through a per-thread signal and a one-shot Lua hook. */
void gil_signal_init(void);
void gil_signal_post(gilua_tstate *holder);
/* Prepare a new thread state (only the TSan build needs anything). */
void gil_signal_thread(lua_State *L);
void gil_signal_openlibs(lua_State *L);  /* after luaL_openlibs */
/* Remove our hook from 'co', which leaves this OS thread (a coroutine that
** yielded or ended); then answer any request that arrived meanwhile. */
void gil_signal_disarm(gilua_tstate *ts, lua_State *co);

#endif
