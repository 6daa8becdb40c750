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
** The hook (request_hook) puts back whatever hook the user had set on that
** coroutine (debug.sethook keeps working: events the user asked for are
** passed on), then answers: KeyboardInterrupt, or gil_yield.
**
** Rules the handler keeps:
** - it arms a hook only while its thread holds the GIL and is not itself
**   changing hooks; otherwise it leaves the flags, and the thread checks
**   them when it gets back to a safe point;
** - it touches nothing but its own thread's state.
**
** Under ThreadSanitizer (GIL_POLL_HOOK, see the Makefile) there is no
** signal (gil/gil_signal.c says why); every thread state carries a count
** hook that polls the request every POLL_COUNT instructions instead. It is
** the same protocol seen from the GIL's side, which is what TSan checks;
** the price (a permanent hook) only matters for speed, which a TSan build
** does not measure.
*/
#include "gilua_vm.h"

#define POLL_COUNT 1000


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


/* Arm the one-shot hook on the running coroutine: the GIL's request
** callback, called by its signal handlers on the thread itself. */
static void arm (gil_thread *t) {
  gilua_tstate *ts = (gilua_tstate *)t;
  lua_State *co = ts->current;
  if (!t->holds || ts->in_hookwork || co == NULL) return;
  if (lua_gethook(co) == request_hook) return;  /* already armed */
  ts->saved_hook = lua_gethook(co);
  ts->saved_mask = lua_gethookmask(co);
  ts->saved_count = lua_gethookcount(co);
  ts->hooked = co;
  lua_sethook(co, request_hook, ts->saved_mask | LUA_MASKCOUNT, 1);
}


/* Put the user's hook back on 'co'. Not in a signal handler. */
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
}


static void request_hook (lua_State *L, lua_Debug *ar) {
  gilua_tstate *ts = gilua_ts();
  lua_Hook user = ts->saved_hook;
  int usermask = ts->saved_mask;
  restore(ts, L);
  answer(ts, L);
  if (user && (usermask & eventmask(ar->event)))
    user(L, ar);
}


void gilua_hook_disarm (gilua_tstate *ts, lua_State *co) {
  restore(ts, co);
  answer(ts, ts->current);
}


#ifndef GIL_POLL_HOOK

void gilua_hook_thread (lua_State *L) {
  (void)L;
}


void gilua_hook_openlibs (lua_State *L) {
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


void gilua_hook_thread (lua_State *L) {
  lua_sethook(L, poll_hook, LUA_MASKCOUNT, POLL_COUNT);
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
  wrap(L, "sethook", poll_sethook);
  wrap(L, "gethook", poll_gethook);
  lua_pop(L, 1);
}

#endif


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
