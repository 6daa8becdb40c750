/*
** gil.h: the Global Interpreter Lock.
*/
#ifndef gil_h
#define gil_h

#include <stdatomic.h>

#include "gilua_vm.h"

/* Set by a thread that has waited a whole switch interval for the GIL
** without seeing it change hands; cleared by whoever takes the GIL next.
** The holder checks it at safe points: a relaxed load, nothing more. */
extern atomic_int gil_drop_request;

#define gil_drop_requested() \
  atomic_load_explicit(&gil_drop_request, memory_order_relaxed)

void gil_init(gilua_tstate *ts);     /* create; 'ts' holds it on return */
void gil_acquire(gilua_tstate *ts);
void gil_release(gilua_tstate *ts);
void gil_yield(gilua_tstate *ts);    /* answer a drop request */
void gil_finalize(gilua_tstate *ts); /* no other thread takes the GIL again */
void gil_destroy(void);

void gil_register(gilua_tstate *ts);   /* GIL mutex taken inside */
void gil_unregister(gilua_tstate *ts);
void gil_after_fork(gilua_tstate *ts); /* in the child: 'ts' is alone */

void gil_setinterval(double secs);
double gil_getinterval(void);

/* Statistics: 'fn' is called for every thread state, under the GIL mutex. */
void gil_getstats(gilua_stats *st);
void gil_foreach(void (*fn)(gilua_tstate *ts, void *ud), void *ud);
void gil_resetstats(void);
void gil_setname(gilua_tstate *ts, const char *name);

/* gil_signal.c: drop requests and Ctrl-C reach the holder's running
** coroutine through a per-thread signal and a one-shot Lua hook. */
void gil_signal_init(void);
void gil_signal_post(gilua_tstate *holder);
/* Prepare a new thread state (only the TSan build needs anything). */
void gil_signal_thread(lua_State *L);
/* Remove our hook from 'co', which leaves this OS thread (a coroutine that
** yielded or ended); then answer any request that arrived meanwhile. */
void gil_signal_disarm(gilua_tstate *ts, lua_State *co);

#endif
