/*
** gilua_hook.c: how the GIL's requests reach the Lua code a thread runs.
**
** Lua checks for hooks on every instruction only while a hook is set, so a
** one-shot hook is a free way to stop a running VM at its next
** instruction. gil/ signals the holder's OS thread when a drop request or
** a Ctrl-C is pending for it, and its handler calls arm() below, on that
** very thread: arm() sets the hook on the coroutine the thread is running
** ('current', which vm/gilua_coroutine.c keeps up to date). lua_sethook is
** safe there because the thread only ever changes its own coroutine's
** hook, and never while it is itself changing hooks ('in_hookwork').
**
** The hook (request_hook) puts back whatever hook the coroutine had
** (debug.sethook keeps working: events the user asked for are passed on),
** then answers: KeyboardInterrupt, or gil_yield.
**
** Rules the handler keeps:
** - it arms a hook only while its thread holds the GIL and is not itself
**   changing hooks; otherwise it leaves the flags, and the thread checks
**   them when it gets back to a safe point;
** - it touches nothing but its own thread's state.
**
** The count hook. Two things need the VM to stop every so many
** instructions, for as long as they last:
** - the policy "old" (gil/gil_old.c) lets go of the GIL every
**   check_interval instructions, between any two of them; while the GIL
**   says so ('ticking': that policy, and more than one thread), every
**   coroutine a thread runs carries count_hook, which calls gil_tick;
**   so does the deterministic scheduler (gil/gil_sched.c), at a count it
**   draws anew at each take (gil_tickperiod);
** - under ThreadSanitizer (GIL_POLL_HOOK, see the Makefile) there is no
**   signal (gil/gil_signal.c says why), so every coroutine carries
**   count_hook for good, which polls the requests every POLL_COUNT
**   instructions instead: the same protocol seen from the GIL's side,
**   which is what TSan checks; the price only matters for speed, which a
**   TSan build does not measure.
** The count hook goes on a coroutine at a safe point (sync: when its
** thread takes the GIL back, resumes it, or answers a request; the GIL
** signals the holder when ticking starts) and comes off by itself at its
** next call once ticking has stopped. It must live beside the user's
** hooks: debug.sethook would replace it, and a coroutine with a user hook
** would never be preempted. So debug.sethook and debug.gethook are
** wrapped: a hook the user sets under ours is kept in a side table
** (coroutine -> userhook) and called from count_hook for the events it
** asked for; gethook shows the user's hook, never ours. While the user's
** hook counts instructions too, ours runs at the user's count.
*/
#include "gilua_vm.h"

#define POLL_COUNT 1000

#define USERHOOKS "gilua.userhooks"


/* Event codes to mask bits, to pass on the events the user asked for. */
static int eventmask (int event) {
  switch (event) {
    case LUA_HOOKCALL: case LUA_HOOKTAILCALL: return LUA_MASKCALL;
    case LUA_HOOKRET: return LUA_MASKRET;
    case LUA_HOOKLINE: return LUA_MASKLINE;
    default: return LUA_MASKCOUNT;
  }
}


static void request_hook (lua_State *L, lua_Debug *ar);
static void count_hook (lua_State *L, lua_Debug *ar);
static void keep_counting (gilua_tstate *ts, lua_State *co);


static void arm_on (gilua_tstate *ts, lua_State *co) {
  if (lua_gethook(co) == request_hook && (lua_gethookmask(co) & LUA_MASKCOUNT))
    return;  /* already armed */
  ts->saved_hook = lua_gethook(co);
  ts->saved_mask = lua_gethookmask(co);
  ts->saved_count = lua_gethookcount(co);
  ts->hooked = co;
  lua_sethook(co, request_hook, ts->saved_mask | LUA_MASKCOUNT, 1);
}


/* Arm the one-shot hook on the running coroutine: the GIL's request
** callback, called by its signal handlers on the thread itself. */
static void arm (gil_thread *t) {
  gilua_tstate *ts = (gilua_tstate *)t;
  lua_State *co = ts->current;
  if (!t->holds || ts->in_hookwork || co == NULL) return;
  arm_on(ts, co);
}


/* Put the saved hook back on 'co'. Not in a signal handler. */
static void restore (gilua_tstate *ts, lua_State *co) {
  ts->in_hookwork = 1;
  if (lua_gethook(co) == request_hook)
    lua_sethook(co, ts->saved_hook, ts->saved_mask, ts->saved_count);
  ts->hooked = NULL;
  ts->in_hookwork = 0;
}


/* A safe point: answer what is pending for this thread. */
static void answer (gilua_tstate *ts, lua_State *L) {
  gilua_checkinterrupt(L);
  if (gil_drop_requested(ts->gt.gil)) gil_yield(&ts->gt);
  keep_counting(ts, L);
}


/* The count hook under the one-shot hook gets no event from it: setting
** the one-shot hook restarted the count anyway. */
static void request_hook (lua_State *L, lua_Debug *ar) {
  gilua_tstate *ts = gilua_ts();
  lua_Hook user = ts->saved_hook;
  int usermask = ts->saved_mask;
  restore(ts, L);
  answer(ts, L);
  if (user && (usermask & eventmask(ar->event)) &&
      !(user == count_hook && ar->event == LUA_HOOKCOUNT))
    user(L, ar);
}


void gilua_hook_disarm (gilua_tstate *ts, lua_State *co) {
  restore(ts, co);
  answer(ts, ts->current);
}


/*
** {======================================================
** The count hook
** =======================================================
*/

/* The user's hook under ours. With a count of its own, the user's count
** is the count for both (Lua keeps one), so that the user's count events
** come exactly as they would without ours. */
typedef struct userhook {
  lua_Hook h;
  int mask, count;
} userhook;

static int userhooks_seen;  /* a user's hook was ever kept: look it up */


/* Whether count_hook belongs on the coroutines (gilua_hook_wanted, in
** gilua_vm.h), and its period. */
#define wanted()  gilua_hook_wanted(gilua_ts())

static int period (void) {
  gil_t *g = gilua_ts()->gt.gil;
  return gil_ticking(g) ? gil_tickperiod(g) : POLL_COUNT;
}



/* The user's hook on 'co', looked up with L's stack. */
static userhook *finduser (lua_State *L, lua_State *co) {
  userhook *u = NULL;
  if (!userhooks_seen) return NULL;
  if (lua_getfield(L, LUA_REGISTRYINDEX, USERHOOKS) == LUA_TTABLE) {
    lua_pushthread(co);
    if (co != L) lua_xmove(co, L, 1);
    lua_rawget(L, -2);
    u = lua_touserdata(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return u;
}


/* Puts count_hook on 'co' (over the user's hook 'u', if any). */
static void put_ours (gilua_tstate *ts, lua_State *co, userhook *u) {
  int mask = u ? u->mask : 0;
  int count = (mask & LUA_MASKCOUNT) ? u->count : period();
  ts->in_hookwork = 1;
  lua_sethook(co, count_hook, mask | LUA_MASKCOUNT, count);
  ts->in_hookwork = 0;
}


/* Take whatever hook 'co' has now as the user's, and put ours on top
** ('co' has no hook of ours; ours is wanted). */
static void remember (gilua_tstate *ts, lua_State *L, lua_State *co) {
  lua_Hook h = lua_gethook(co);
  int mask = lua_gethookmask(co), count = lua_gethookcount(co);
  userhook *u = NULL;
  if (h != NULL || userhooks_seen) {
    luaL_checkstack(L, 4, NULL);
    if (lua_getfield(L, LUA_REGISTRYINDEX, USERHOOKS) != LUA_TTABLE) {
      lua_pop(L, 1);
      return;  /* not opened yet */
    }
    lua_pushthread(co);
    if (co != L) lua_xmove(co, L, 1);
    if (h == NULL)
      lua_pushnil(L);
    else {
      u = lua_newuserdatauv(L, sizeof *u, 0);
      u->h = h; u->mask = mask; u->count = count;
      userhooks_seen = 1;
    }
    lua_rawset(L, -3);
    lua_pop(L, 1);
  }
  put_ours(ts, co, u);
}


/* Ours is no longer wanted: the user's hook (or none) goes back on L. */
static void forget (gilua_tstate *ts, lua_State *L, userhook *u) {
  ts->in_hookwork = 1;
  lua_sethook(L, u ? u->h : NULL, u ? u->mask : 0, u ? u->count : 0);
  ts->in_hookwork = 0;
}


/* At a safe point of the thread, with the GIL: count_hook goes on 'co' if
** it is wanted there and missing, or has an outdated period. A request
** that arrives meanwhile is not lost: its one-shot hook stays on top, or,
** refused while we change hooks, comes back in a moment (new's waiters
** repeat theirs) or finds count_hook in place. */
static void keep_counting (gilua_tstate *ts, lua_State *co) {
  lua_Hook h;
  if (co == NULL || !wanted()) return;
  h = lua_gethook(co);
  if (h == request_hook) return;  /* armed: it syncs when it fires */
  if (h != count_hook)
    remember(ts, co, co);
  else {
    userhook *u = finduser(co, co);
    if (lua_gethookcount(co) !=
        ((u && (u->mask & LUA_MASKCOUNT)) ? u->count : period()))
      put_ours(ts, co, u);
  }
}


/*
** Back from a check where another thread had the GIL: the next check comes
** after a part of the interval only (then whole intervals again, see
** keep_counting). Lua counts each coroutine's instructions on its own, so
** without this a loop whose length divides the interval would be cut at
** the same instruction every time, and whether the course's race loses
** updates would hang on where each thread's count began.
*/
static void rephase (gilua_tstate *ts, lua_State *L) {
  unsigned h = (unsigned)ts->gt.acquisitions * 2654435761u ^
               (unsigned)ts->gt.native_id * 40503u;
  /* the scheduler's draw is a phase already, and the same every run */
  int n = gil_sched_on(ts->gt.gil) ? period() : 1 + (int)(h % (unsigned)period());
  ts->in_hookwork = 1;
  lua_sethook(L, count_hook, lua_gethookmask(L), n);
  ts->in_hookwork = 0;
}


static void count_hook (lua_State *L, lua_Debug *ar) {
  gilua_tstate *ts = gilua_ts();
  userhook *u = finduser(L, L);
  if (ar->event == LUA_HOOKCOUNT) {
    if (!wanted()) {
      forget(ts, L, u);
      keep_counting(ts, L);  /* wanted again meanwhile? (signal refused) */
    } else {
      int switched = gil_ticking(ts->gt.gil) && gil_tick(&ts->gt);
      answer(ts, L);
      /* Other threads ran meanwhile, and may have set another hook. */
      u = finduser(L, L);
      if (switched && !(u && (u->mask & LUA_MASKCOUNT))) rephase(ts, L);
    }
  }
  if (u && (u->mask & eventmask(ar->event))) u->h(L, ar);
}


void gilua_hook_thread (lua_State *L) {
  if (wanted()) put_ours(gilua_ts(), L, NULL);
}


/* After the thread took the GIL back, or switched coroutines: a cheap
** look, and the one-shot hook does the work at the next instruction (a
** user's hook to keep may need memory, which a C function in the middle
** of a blocking call must not risk). */
void gilua_hook_sync (gilua_tstate *ts) {
  lua_State *co = ts->current;
  if (co == NULL || !wanted() || ts->in_hookwork) return;
  ts->in_hookwork = 1;
  if (lua_gethook(co) != count_hook) arm_on(ts, co);
  ts->in_hookwork = 0;
}


static lua_State *hooktarget (lua_State *L) {
  return lua_isthread(L, 1) ? lua_tothread(L, 1) : L;
}


/* Calls the original debug function (upvalue 1) with the arguments,
** hands off for the signal handlers meanwhile (a request they refuse comes
** again); errors pass through after. For gethook, our hook is out of the
** way (the user's in its place) during the call. */
static int call_original (lua_State *L, int nres) {
  gilua_tstate *ts = gilua_ts();
  lua_State *co = hooktarget(L);
  lua_Hook h = lua_gethook(co);
  int mask = lua_gethookmask(co), count = lua_gethookcount(co);
  int n = lua_gettop(L), status, swap = (nres != 0 && h == count_hook);
  userhook *u = swap ? finduser(L, co) : NULL;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  ts->in_hookwork = 1;
  if (swap)
    lua_sethook(co, u ? u->h : NULL, u ? u->mask : 0, u ? u->count : 0);
  status = lua_pcall(L, n, nres, 0);
  if (swap) lua_sethook(co, count_hook, mask, count);
  ts->in_hookwork = 0;
  if (status != LUA_OK) lua_error(L);
  return lua_gettop(L);
}


static int hook_sethook (lua_State *L) {
  lua_State *co = hooktarget(L);
  call_original(L, 0);
  if (wanted()) remember(gilua_ts(), L, co);
  return 0;
}


static int hook_gethook (lua_State *L) {
  return call_original(L, LUA_MULTRET);
}


static void wrap (lua_State *L, const char *name, lua_CFunction f) {
  lua_getfield(L, -1, name);
  lua_pushcclosure(L, f, 1);
  lua_setfield(L, -2, name);
}


void gilua_hook_openlibs (lua_State *L) {
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, USERHOOKS);
  lua_getglobal(L, "debug");
  wrap(L, "sethook", hook_sethook);
  wrap(L, "gethook", hook_gethook);
  lua_pop(L, 1);
}

/* }====================================================== */


void gilua_hook_init (void) {
  gil_on_request(arm);
}


/*
** {======================================================
** Ctrl-C, as gilua.h offers it
** =======================================================
*/

void gilua_sigint (int on) {
  gil_sigint(on);
}


int gilua_sigint_on (void) {
  return gil_sigint_on();
}


void gilua_setinterrupt (void) {
  gil_setinterrupt();
}


int gilua_interrupt_pending (void) {
  return gil_interrupt_pending();
}


void gilua_checkinterrupt (lua_State *L) {
  if (gil_interrupt_take())
    gilua_raise(L, "KeyboardInterrupt", NULL);
}

/* }====================================================== */
