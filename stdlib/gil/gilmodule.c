/*
** gilmodule.c: `require "gil"`: GIL statistics from Lua.
*/
#include "gil.h"


static void push_thread (gilua_tstate *ts, void *ud) {
  lua_State *L = ud;
  lua_createtable(L, 0, 8);
  lua_pushstring(L, ts->name);
  lua_setfield(L, -2, "name");
  lua_pushinteger(L, (lua_Integer)ts->ident);
  lua_setfield(L, -2, "ident");
  lua_pushinteger(L, ts->native_id);
  lua_setfield(L, -2, "native_id");
  lua_pushnumber(L, ts->held);
  lua_setfield(L, -2, "hold_time");
  lua_pushnumber(L, ts->waited);
  lua_setfield(L, -2, "wait_time");
  lua_pushinteger(L, (lua_Integer)ts->acquisitions);
  lua_setfield(L, -2, "acquisitions");
  lua_pushinteger(L, (lua_Integer)ts->drops_requested);
  lua_setfield(L, -2, "drop_requests_made");
  lua_pushinteger(L, (lua_Integer)ts->drops_received);
  lua_setfield(L, -2, "drop_requests_received");
  lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
}


/* Building the table allocates, which must not happen under the GIL's
** mutex; so the per-thread figures are copied out first. */
typedef struct snap { gilua_tstate copy[64]; int n; } snap;

static void take_snap (gilua_tstate *ts, void *ud) {
  snap *s = ud;
  if (s->n < 64) s->copy[s->n++] = *ts;
}


static int g_stats (lua_State *L) {
  gilua_stats st;
  snap *s = lua_newuserdatauv(L, sizeof *s, 0);
  int i;
  s->n = 0;
  gil_foreach(take_snap, s);
  gil_getstats(&st);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)st.switches);
  lua_setfield(L, -2, "switches");
  lua_pushinteger(L, (lua_Integer)st.forced_switches);
  lua_setfield(L, -2, "forced_switches");
  lua_pushinteger(L, (lua_Integer)st.drop_requests);
  lua_setfield(L, -2, "drop_requests");
  lua_pushnumber(L, gilua_getswitchinterval());
  lua_setfield(L, -2, "switch_interval");
  lua_createtable(L, s->n, 0);
  for (i = s->n - 1; i >= 0; i--) push_thread(&s->copy[i], L);
  lua_setfield(L, -2, "threads");
  return 1;
}


static int g_reset_stats (lua_State *L) {
  (void)L;
  gil_resetstats();
  return 0;
}


static const luaL_Reg funcs[] = {
  {"stats", g_stats},
  {"reset_stats", g_reset_stats},
  {NULL, NULL}
};


int luaopen_gilua_gil (lua_State *L) {
  luaL_newlib(L, funcs);
  return 1;
}
