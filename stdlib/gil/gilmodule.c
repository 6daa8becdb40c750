/*
** gilmodule.c: `require "gil"`: GIL statistics and traces from Lua.
**
**   gil.stats()            totals and one table per thread (finished ones too)
**   gil.reset_stats()
**   gil.summary()          the --gil-stats table, as a string
**   gil.trace_start(path)  record every hand-over; ".html": a timeline page
**   gil.trace_stop()       write the file; returns its path (nil: no trace)
**   gil.tracing()          true while a trace runs
**   gil.trace_path()       the file of the running trace (nil: none)
**   gil.timeline(trace, html)  the timeline page of a JSON trace file
**   gil.merge_traces(out, files)  several processes' traces as one
**                          (stdlib/gil/merge.lua)
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gilua_vm.h"


static void setnum (lua_State *L, const char *k, lua_Number v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}


static void setint (lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}


static void push_thread (lua_State *L, const gilua_threadstats *t) {
  lua_createtable(L, 0, 9);
  lua_pushstring(L, t->name);
  lua_setfield(L, -2, "name");
  setint(L, "ident", (lua_Integer)t->ident);
  setint(L, "native_id", (lua_Integer)t->native_id);
  lua_pushboolean(L, t->alive);
  lua_setfield(L, -2, "alive");
  setnum(L, "hold_time", t->hold_time);
  setnum(L, "wait_time", t->wait_time);
  setint(L, "acquisitions", (lua_Integer)t->acquisitions);
  setint(L, "drop_requests_made", (lua_Integer)t->drop_requests_made);
  setint(L, "drop_requests_received", (lua_Integer)t->drop_requests_received);
}


/* Building the tables allocates, which must not happen under the GIL's
** mutex; so the per-thread figures are copied out first, into a buffer
** big enough for the count asked just before (threads may start in
** between: then ask again). */
static int g_stats (lua_State *L) {
  gilua_stats st;
  gilua_threadstats *t = NULL;
  int n = gilua_getthreadstats(NULL, 0), got, i;
  for (;;) {
    t = lua_newuserdatauv(L, sizeof *t * (size_t)(n + 4), 0);
    got = gilua_getthreadstats(t, n + 4);
    if (got <= n + 4) break;
    lua_pop(L, 1);
    n = got;
  }
  gilua_getstats(&st);
  lua_createtable(L, 0, 9);
  setint(L, "switches", (lua_Integer)st.switches);
  setint(L, "forced_switches", (lua_Integer)st.forced_switches);
  setint(L, "drop_requests", (lua_Integer)st.drop_requests);
  setnum(L, "switch_interval", gilua_getswitchinterval());
  lua_pushstring(L, gilua_getgilpolicy());
  lua_setfield(L, -2, "policy");
  setint(L, "check_interval", gilua_getcheckinterval());
  setnum(L, "elapsed", st.elapsed);
  lua_createtable(L, got, 0);
  for (i = 0; i < got; i++) {
    push_thread(L, &t[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "threads");
  return 1;
}


static int g_reset_stats (lua_State *L) {
  (void)L;
  gilua_resetstats();
  return 0;
}


static int g_summary (lua_State *L) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (f == NULL) return luaL_error(L, "not enough memory");
  gilua_printstats(f);
  fclose(f);
  lua_pushlstring(L, buf, len);
  free(buf);
  return 1;
}


static int g_trace_start (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (gilua_trace_start(path) != 0) {
    if (errno == EBUSY)
      return gilua_raise(L, "RuntimeError", "trace_start: a trace is running already");
    return gilua_oserror(L, errno, "trace_start", path);
  }
  return 0;
}


/* Writing the file needs no GIL (the events are the trace's own by then),
** so other threads run meanwhile, as around any other file write. The path
** is kept first: another thread could start a new trace right away. */
static int push_tracepath (lua_State *L) {
  char *path = gilua_trace_path();
  if (path == NULL) return 0;
  lua_pushstring(L, path);  /* (a memory error here would leak 'path') */
  free(path);
  return 1;
}


static int g_trace_stop (lua_State *L) {
  int rc, en;
  if (!push_tracepath(L)) return 0;
  GILUA_BEGIN_ALLOW_THREADS(L)
    rc = gilua_trace_stop();
    en = errno;
  GILUA_END_ALLOW_THREADS(L)
  if (rc == 1) return 0;
  if (rc != 0) return gilua_oserror(L, en, "trace_stop", lua_tostring(L, -1));
  return 1;
}


static int g_tracing (lua_State *L) {
  char *path = gilua_trace_path();
  lua_pushboolean(L, path != NULL);
  free(path);
  return 1;
}


static int g_trace_path (lua_State *L) {
  return push_tracepath(L);
}


static int g_timeline (lua_State *L) {
  const char *trace = luaL_checkstring(L, 1);
  const char *html = luaL_checkstring(L, 2);
  int rc, en;
  GILUA_BEGIN_ALLOW_THREADS(L)
    rc = gilua_timeline(trace, html);
    en = errno;
  GILUA_END_ALLOW_THREADS(L)
  if (rc != 0) {
    if (en == EINVAL)
      return gilua_raise(L, "ValueError", "timeline: %s is not a trace", trace);
    return gilua_oserror(L, en, "timeline", en == ENOENT ? trace : html);
  }
  lua_pushstring(L, html);
  return 1;
}


static int g_merge_traces (lua_State *L) {
  int n = lua_gettop(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "gil.merge");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "merge");
  lua_insert(L, 1);
  lua_pop(L, 1);
  lua_call(L, n, LUA_MULTRET);
  return lua_gettop(L);
}


static const luaL_Reg funcs[] = {
  {"stats", g_stats},
  {"reset_stats", g_reset_stats},
  {"summary", g_summary},
  {"trace_start", g_trace_start},
  {"trace_stop", g_trace_stop},
  {"tracing", g_tracing},
  {"trace_path", g_trace_path},
  {"timeline", g_timeline},
  {"merge_traces", g_merge_traces},
  {NULL, NULL}
};


int luaopen_gilua_gil (lua_State *L) {
  luaL_newlib(L, funcs);
  return 1;
}
