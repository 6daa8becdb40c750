/*
** tap.h: TAP output for the C tests, and running a chunk (each test file
** includes it once, after gilua.h; helpers a test may not use are inline).
*/
#ifndef tap_h
#define tap_h

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include <lua.h>
#include <lauxlib.h>

#include "gilua.h"

static int ntest, nfail;

static void ok (int cond, const char *name) {
  ntest++;
  if (!cond) nfail++;
  printf("%sok %d - %s\n", cond ? "" : "not ", ntest, name);
  fflush(stdout);
}

static inline void diag (const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "# ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  fflush(stderr);
}

static inline double now (void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

/* Runs 'code' in T; an error is shown as a diagnostic. */
static inline int dostring (lua_State *T, const char *code) {
  int st = luaL_loadstring(T, code);
  if (st == LUA_OK) st = gilua_pcall(T, 0, 0);
  if (st != LUA_OK) {
    diag("%s", lua_tostring(T, -1) ? lua_tostring(T, -1) : "(error object)");
    lua_pop(T, 1);
  }
  return st;
}

#endif
