/*
** gil_signal.c: getting a drop request (or a Ctrl-C) to the coroutine that
** the GIL holder is running.
**
** Lua checks for hooks on every instruction only while a hook is set, so a
** one-shot hook is a free way to stop a running VM at its next instruction;
** lua.c stops a script on Ctrl-C exactly so. But lua_sethook must not be
** called from another thread: the holder reads those fields while it runs.
** So a waiter never touches the holder's Lua state; it sends the holder's
** OS thread a signal, and the handler, which runs on that very thread,
** sets the hook on the coroutine the thread is running ('current', which
** the coroutine library keeps up to date). This is how Go preempts a
** goroutine, and how lua.c handles SIGINT.
**
** The hook (gil_hook) puts back whatever hook the user had set on that
** coroutine (debug.sethook keeps working: events the user asked for are
** passed on), then answers the request.
**
** Rules the handler keeps:
** - it arms a hook only while its thread holds the GIL and is not itself
**   changing hooks ('in_hookwork'); otherwise it leaves the flags, and the
**   thread checks them when it gets back to a safe point;
** - it touches nothing but its own thread's state.
**
** Under ThreadSanitizer (GIL_POLL_HOOK, see the Makefile) no signal is
** used: TSan holds asynchronous signals back until the thread next calls
** into libc, which a CPU-bound Lua loop never does, and it runs
** "synchronous" ones (SIGSYS...) even inside its own runtime, where our
** handler then deadlocks TSan itself. There, every thread state carries a
** count hook that polls the request every POLL_COUNT instructions. It is
** the same protocol seen from the GIL's side, which is what TSan checks;
** the price (a permanent hook) only matters for speed, which a TSan build
** does not measure. Otherwise the signal is SIGURG, whose default action
** is to be ignored and which debuggers pass through quietly.
*/
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "gil.h"

#define GIL_DROP_SIGNAL SIGURG
#define POLL_COUNT 1000

static pthread_t main_thread;
/* Whether Ctrl-C raises KeyboardInterrupt: set by the main thread, read by
** any thread that waits (gilua_condwait), GIL or not; hence atomic. */
static atomic_int sigint_on;


/* Event codes to mask bits, to pass on the events the user asked for. */
static int eventmask (int event) {
  switch (event) {
    case LUA_HOOKCALL: case LUA_HOOKTAILCALL: return LUA_MASKCALL;
    case LUA_HOOKRET: return LUA_MASKRET;
    case LUA_HOOKLINE: return LUA_MASKLINE;
    default: return LUA_MASKCOUNT;
  }
}


static void gil_hook (lua_State *L, lua_Debug *ar);


/* Arm the one-shot hook on the running coroutine. Signal handler only. */
static void arm (gilua_tstate *ts) {
  lua_State *co = ts->current;
  if (!ts->holds_gil || ts->in_hookwork || co == NULL) return;
  if (lua_gethook(co) == gil_hook) return;  /* already armed */
  ts->saved_hook = lua_gethook(co);
  ts->saved_mask = lua_gethookmask(co);
  ts->saved_count = lua_gethookcount(co);
  ts->hooked = co;
  lua_sethook(co, gil_hook, ts->saved_mask | LUA_MASKCOUNT, 1);
}


/* Put the user's hook back on 'co'. Not in a signal handler. */
static void restore (gilua_tstate *ts, lua_State *co) {
  ts->in_hookwork = 1;
  if (lua_gethook(co) == gil_hook)
    lua_sethook(co, ts->saved_hook, ts->saved_mask, ts->saved_count);
  ts->hooked = NULL;
  ts->in_hookwork = 0;
}


/* A safe point: answer what is pending for this thread. */
static void answer (gilua_tstate *ts, lua_State *L) {
  if (ts->interrupt) {
    ts->interrupt = 0;
    gilua_raise(L, "KeyboardInterrupt", NULL);
  }
  if (gil_drop_requested()) gil_yield(ts);
}


static void gil_hook (lua_State *L, lua_Debug *ar) {
  gilua_tstate *ts = gilua_ts();
  lua_Hook user = ts->saved_hook;
  int usermask = ts->saved_mask;
  restore(ts, L);
  answer(ts, L);
  if (user && (usermask & eventmask(ar->event)))
    user(L, ar);
}


void gil_signal_disarm (gilua_tstate *ts, lua_State *co) {
  restore(ts, co);
  answer(ts, ts->current);
}


static void on_drop_signal (int sig) {
  int saved = errno;
  gilua_tstate *ts = gilua_ts();
  (void)sig;
  if (ts) arm(ts);
  errno = saved;
}


/* Ctrl-C belongs to the main thread, as in Python. */
static void on_sigint (int sig) {
  int saved = errno;
  gilua_tstate *ts = gilua_ts();
  if (!pthread_equal(pthread_self(), main_thread)) {
    pthread_kill(main_thread, sig);
  } else if (ts) {
    ts->interrupt = 1;
    arm(ts);
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


#ifndef GIL_POLL_HOOK

void gil_signal_post (gilua_tstate *holder) {
  pthread_kill(holder->thread, GIL_DROP_SIGNAL);
}


void gil_signal_thread (lua_State *L) {
  (void)L;
}



void gil_signal_openlibs (lua_State *L) {
  (void)L;
}

#else

/*
** The polling hook must live beside the user's hooks: debug.sethook would
** replace it, and a coroutine with a user hook would never be preempted.
** So in this build debug.sethook and debug.gethook are wrapped: the user's
** hook is kept in a side table (coroutine -> userhook) and called from
** poll_hook for the events it asked for; gethook shows the user's hook,
** never ours.
*/
#define USERHOOKS "gilua.userhooks"

typedef struct userhook { lua_Hook h; int mask, count; } userhook;

static void poll_hook (lua_State *L, lua_Debug *ar);


/* The user's hook on 'co', looked up with L's stack. */
static userhook *finduser (lua_State *L, lua_State *co) {
  userhook *u;
  lua_getfield(L, LUA_REGISTRYINDEX, USERHOOKS);
  lua_pushthread(co);
  if (co != L) lua_xmove(co, L, 1);
  lua_rawget(L, -2);
  u = lua_touserdata(L, -1);
  lua_pop(L, 2);
  return u;
}


static void poll_hook (lua_State *L, lua_Debug *ar) {
  userhook *u = finduser(L, L);
  if (ar->event == LUA_HOOKCOUNT) answer(gilua_ts(), L);
  if (u && (u->mask & eventmask(ar->event))) u->h(L, ar);
}


/* Take whatever hook 'co' now has as the user's, and put ours on top. */
static void remember (lua_State *L, lua_State *co) {
  lua_Hook h = lua_gethook(co);
  int mask = lua_gethookmask(co), count = lua_gethookcount(co);
  lua_getfield(L, LUA_REGISTRYINDEX, USERHOOKS);
  lua_pushthread(co);
  if (co != L) lua_xmove(co, L, 1);
  if (h == NULL || h == poll_hook) {
    lua_pushnil(L);
    mask = 0;
  } else {
    userhook *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->h = h; u->mask = mask; u->count = count;
  }
  lua_rawset(L, -3);
  lua_pop(L, 1);
  lua_sethook(co, poll_hook, mask | LUA_MASKCOUNT,
              (mask & LUA_MASKCOUNT) ? count : POLL_COUNT);
}


static lua_State *hooktarget (lua_State *L) {
  return lua_isthread(L, 1) ? lua_tothread(L, 1) : L;
}


static int poll_sethook (lua_State *L) {
  lua_State *co = hooktarget(L);
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, n, 0);
  remember(L, co);
  return 0;
}


static int poll_gethook (lua_State *L) {
  lua_State *co = hooktarget(L);
  lua_Hook h = lua_gethook(co);
  int mask = lua_gethookmask(co), count = lua_gethookcount(co);
  int n = lua_gettop(L), nres;
  userhook *u = finduser(L, co);
  if (h == poll_hook)  /* show the user's hook (or none) to the original */
    lua_sethook(co, u ? u->h : NULL, u ? u->mask : 0, u ? u->count : 0);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, n, LUA_MULTRET);
  nres = lua_gettop(L);
  if (h == poll_hook) lua_sethook(co, poll_hook, mask, count);
  return nres;
}


void gil_signal_post (gilua_tstate *holder) {
  (void)holder;
}


void gil_signal_thread (lua_State *L) {
  lua_sethook(L, poll_hook, LUA_MASKCOUNT, POLL_COUNT);
}


static void wrap (lua_State *L, const char *name, lua_CFunction f) {
  lua_getfield(L, -1, name);
  lua_pushcclosure(L, f, 1);
  lua_setfield(L, -2, name);
}


void gil_signal_openlibs (lua_State *L) {
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, USERHOOKS);
  lua_getglobal(L, "debug");
  wrap(L, "sethook", poll_sethook);
  wrap(L, "gethook", poll_gethook);
  lua_pop(L, 1);
}

#endif


void gilua_sigint (int on) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on ? on_sigint : SIG_DFL;
  sigemptyset(&sa.sa_mask);
  /* No SA_RESTART: a sleeping main thread must wake up to be interrupted. */
  sigaction(SIGINT, &sa, NULL);
  atomic_store_explicit(&sigint_on, on, memory_order_relaxed);
}


int gilua_sigint_on (void) {
  return atomic_load_explicit(&sigint_on, memory_order_relaxed);
}


void gilua_checkinterrupt (lua_State *L) {
  gilua_tstate *ts = gilua_ts();
  if (ts && ts->interrupt) {
    ts->interrupt = 0;
    gilua_raise(L, "KeyboardInterrupt", NULL);
  }
}


int gilua_interrupt_pending (void) {
  gilua_tstate *ts = gilua_ts();
  return ts != NULL && ts->interrupt;
}
