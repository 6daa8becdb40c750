/*
** gilua_coroutine.c: coroutine.resume and coroutine.wrap that keep track
** of the coroutine each OS thread is running.
**
** A drop request is delivered as a hook on the coroutine that runs at that
** moment (gil/gil_signal.c), so every switch between coroutines goes
** through gilua_resume, which keeps the thread state's 'current' right.
** Without it, CPU-bound code inside a coroutine would never be preempted.
*/
#include "gilua_vm.h"


int gilua_resume (lua_State *L, lua_State *co, int narg, int *nres) {
  gilua_tstate *ts = gilua_ts();
  lua_State *prev = ts->current;
  int status;
  ts->current = co;
  if (gilua_hook_wanted(ts)) gilua_hook_sync(ts);
  status = lua_resume(co, L, narg, nres);
  ts->current = prev;
  /* 'co' may next run on another OS thread: our hook must not stay on it. */
  if (ts->hooked == co) gilua_hook_disarm(ts, co);
  return status;
}


/* Resume 'co' with the narg values on top of L; results or the error are
** moved to L. Returns the number of values moved, negative on error. */
int gilua_coresume (lua_State *L, lua_State *co, int narg) {
  int status, nres;
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
  lua_xmove(L, co, narg);
  status = gilua_resume(L, co, narg, &nres);
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return -1;
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1);  /* the error object */
  return -1;
}


static int co_resume (lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  int n;
  luaL_argexpected(L, co, 1, "coroutine");
  n = gilua_coresume(L, co, lua_gettop(L) - 1);
  if (n < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(n + 1));
  return n + 1;
}


static int wrap_call (lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  int n = gilua_coresume(L, co, lua_gettop(L));
  if (n < 0) {
    int st = lua_status(co);
    if (st != LUA_OK && st != LUA_YIELD) {  /* dead by error: close it */
#if LUA_VERSION_RELEASE_NUM >= 50406
      lua_closethread(co, L);
#else
      lua_resetthread(co);
#endif
      lua_xmove(co, L, 1);
      lua_replace(L, -2);
    }
    if (lua_type(L, -1) == LUA_TSTRING) {  /* where the call was */
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
    return lua_error(L);
  }
  return n;
}


static int co_wrap (lua_State *L) {
  lua_State *co;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, wrap_call, 1);
  return 1;
}


void gilua_opencoroutine (lua_State *L) {
  lua_getglobal(L, "coroutine");
  lua_pushcfunction(L, co_resume);
  lua_setfield(L, -2, "resume");
  lua_pushcfunction(L, co_wrap);
  lua_setfield(L, -2, "wrap");
  lua_pop(L, 1);
}
