/*
** interp.c: the low-level module `_interpreters`, on which
** concurrent.interpreters is built (as CPython's is on _interpreters).
**
**   create() -> id                 a new interpreter, its GIL its own
**   destroy(id)                    close it (waits for its non-daemon threads)
**   list_all() -> {{id =, whence =, running =}, ...}
**   get_current() -> id, get_main() -> 0
**   exec(id, code)                 code: Lua source, or a function
**   call(id, fn, ...)              -> true, results... | false, excinfo
**   set_main(id, {name = value})   globals of its main namespace
**   is_shareable(v)                whether v can cross
**   crossing(), dupfd(fd)          for shared objects' __mp_reduce
**
** exec and call run in the calling thread: it lets its own GIL go, takes
** the other interpreter's (vm/gilua_interp.c), runs there, and comes back.
** What crosses is copied: the arguments and the results are encoded by the
** multiprocessing serializer on one side and decoded on the other, so the
** two interpreters never share a Lua object. An error there comes back as
** excinfo: {type =, msg =, traceback =}, plain strings, which
** concurrent.interpreters raises as ExecutionFailed. Errors of this module
** itself are concurrent.interpreters' exception classes, raised by name.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interp.h"

#define CROSSING_KEY "_interpreters.crossing"
#define NOTFOUND "concurrent.interpreters.InterpreterNotFoundError"
#define INTERPERROR "concurrent.interpreters.InterpreterError"
#define NOTSHAREABLE "concurrent.interpreters.NotShareableError"


/*
** {======================================================
** Crossing
** =======================================================
*/

int ic_crossing (lua_State *L) {
  int yes = lua_getfield(L, LUA_REGISTRYINDEX, CROSSING_KEY) != LUA_TNIL;
  lua_pop(L, 1);
  return yes;
}


static void setcrossing (lua_State *L, int on) {
  if (on) lua_pushboolean(L, 1);
  else lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, CROSSING_KEY);
}


static int encode_k (lua_State *L) {
  mp_encode(L, 1, lua_touserdata(L, 2));
  return 0;
}


/* The serializer speaks of processes; here it is interpreters. */
static void raise_notshareable (lua_State *L, const char *what) {
  const char *msg;
  luaL_Buffer b;
  size_t n;
  if (lua_istable(L, -1) && lua_getfield(L, -1, "message") == LUA_TSTRING)
    msg = lua_tostring(L, -1);
  else msg = luaL_tolstring(L, -1, NULL);
  n = strlen(msg);
  luaL_buffinit(L, &b);
  if (n >= 17 && strcmp(msg + n - 17, "between processes") == 0) {
    luaL_addlstring(&b, msg, n - 9);
    luaL_addstring(&b, "interpreters");
  }
  else luaL_addstring(&b, msg);
  if (what != NULL) {
    luaL_addstring(&b, " (");
    luaL_addstring(&b, what);
    luaL_addchar(&b, ')');
  }
  luaL_pushresult(&b);
  gilua_pushexception(L, NOTSHAREABLE, lua_tostring(L, -1));
  lua_error(L);
}


void ic_encode (lua_State *L, int idx, mp_buf *b, const char *what) {
  int status;
  idx = lua_absindex(L, idx);
  setcrossing(L, 1);
  lua_pushcfunction(L, encode_k);
  lua_pushvalue(L, idx);
  lua_pushlightuserdata(L, b);
  status = lua_pcall(L, 2, 0, 0);
  setcrossing(L, 0);
  if (status != LUA_OK) raise_notshareable(L, what);
}

/* }====================================================== */


/*
** Several values in one buffer: their count, then each one as its length
** and the serializer's bytes. Each value is encoded on its own, so that
** numbers and strings, the common arguments and results, cost the
** serializer nothing but their bytes (a table around them would make it
** look every value up among the modules' names).
*/
static void encode_values (lua_State *L, int first, int n, mp_buf *b,
                           const char *what) {
  uint32_t count = (uint32_t)n;
  char label[32];
  int i;
  mp_bufadd(L, b, &count, sizeof count);
  for (i = 0; i < n; i++) {
    size_t at = b->n;
    uint64_t len;
    mp_bufreserve(L, b, sizeof len);
    b->n += sizeof len;
    snprintf(label, sizeof label, "%s %d", what, i + 1);
    ic_encode(L, first + i, b, label);
    len = (uint64_t)(b->n - at - sizeof len);
    memcpy(b->p + at, &len, sizeof len);
  }
}


/* Pushes the values of encode_values; returns their count. */
static int decode_values (lua_State *L, const char *s, size_t size) {
  uint32_t count, i;
  size_t at = sizeof count;
  if (size < sizeof count) luaL_error(L, "malformed values");
  memcpy(&count, s, sizeof count);
  luaL_checkstack(L, (int)count + 1, "too many values");
  for (i = 0; i < count; i++) {
    uint64_t len;
    if (size - at < sizeof len) luaL_error(L, "malformed values");
    memcpy(&len, s + at, sizeof len);
    at += sizeof len;
    if (len > size - at) luaL_error(L, "malformed values");
    mp_decode(L, s + at, (size_t)len);
    at += (size_t)len;
  }
  return (int)count;
}

/* }====================================================== */


/*
** {======================================================
** Running in another interpreter
** =======================================================
*/

enum { RUN_SOURCE, RUN_FUNCTION, RUN_CALL, RUN_SETMAIN };

/* What a visit does, and brings back. */
typedef struct job {
  int kind;
  const char *in;               /* encoded input, or the source */
  size_t inlen;
  char *out;                    /* encoded results or excinfo (malloc) */
  size_t outlen;
  int failed;                   /* 'out' is an excinfo */
  int results;                  /* encoding the results (their fault) */
} job;


/* The bytes of 'b' become the job's: its userdata frees nothing. */
static void take_bytes (job *j, mp_buf *b) {
  j->out = b->p;
  j->outlen = b->n;
  b->p = NULL;
  b->n = b->cap = 0;
}


/* In the target, with its GIL: the job's work. */
static int run (lua_State *T) {
  job *j = lua_touserdata(T, 1);
  int n;
  mp_buf *b;
  lua_settop(T, 0);
  gilua_checkinterrupt(T);  /* a Ctrl-C that came along */
  if (j->kind == RUN_SOURCE) {
    if (luaL_loadbuffer(T, j->in, j->inlen, j->in) != LUA_OK)
      return lua_error(T);
    lua_call(T, 0, 0);
    return 0;
  }
  if (j->kind == RUN_SETMAIN) {
    mp_decode(T, j->in, j->inlen);
    lua_pushnil(T);
    while (lua_next(T, 1)) {
      lua_pushvalue(T, -2);
      lua_insert(T, -2);
      lua_setglobal(T, lua_tostring(T, -2));
      lua_pop(T, 1);
    }
    return 0;
  }
  n = decode_values(T, j->in, j->inlen);       /* fn, args... */
  lua_call(T, n - 1, j->kind == RUN_CALL ? LUA_MULTRET : 0);
  if (j->kind != RUN_CALL) return 0;
  n = lua_gettop(T);                           /* the results */
  b = mp_newbuf(T);
  j->results = 1;
  encode_values(T, 1, n, b, "result");
  take_bytes(j, b);
  return 0;
}


/* The error on top of T as an excinfo {type =, msg =, traceback =,
** results =}, encoded into the job. */
static int report_error (lua_State *T) {
  job *j = lua_touserdata(T, 2);
  mp_buf *b;
  lua_settop(T, 1);
  lua_createtable(T, 0, 4);
  if (lua_istable(T, 1) && lua_getmetatable(T, 1)) {
    if (lua_getfield(T, -1, "__name") == LUA_TSTRING) {
      lua_setfield(T, 2, "type");
      lua_pop(T, 1);
      if (lua_getfield(T, 1, "message") != LUA_TNIL) {
        luaL_tolstring(T, -1, NULL);
        lua_setfield(T, 2, "msg");
      }
      lua_pop(T, 1);
      if (lua_getfield(T, 1, "traceback") == LUA_TSTRING)
        lua_setfield(T, 2, "traceback");
      else lua_pop(T, 1);
    }
    else lua_pop(T, 2);
  }
  if (lua_getfield(T, 2, "type") == LUA_TNIL) {  /* not an exception object */
    const char *s = luaL_tolstring(T, 1, NULL);
    const char *tb = strstr(s, "\nstack traceback:\n");
    lua_pushstring(T, luaL_typename(T, 1));
    lua_setfield(T, 2, "type");
    if (tb != NULL) {
      lua_pushlstring(T, s, (size_t)(tb - s));
      lua_setfield(T, 2, "msg");
      lua_pushstring(T, tb + 1);
      lua_setfield(T, 2, "traceback");
    }
    else {
      lua_pushvalue(T, -1);
      lua_setfield(T, 2, "msg");
    }
    lua_pop(T, 1);
  }
  lua_pop(T, 1);
  if (j->results) {
    lua_pushboolean(T, 1);
    lua_setfield(T, 2, "results");
  }
  b = mp_newbuf(T);
  mp_encode(T, 2, b);
  take_bytes(j, b);
  return 0;
}


/* Runs the job in interpreter 'id', from the calling thread. Raises the
** errors of getting there; the job says how it went there. */
static void visit (lua_State *L, lua_Integer id, job *j) {
  int err = 0;
  gilua_tstate *ts = gilua_interp_enter(id, 1, &err);
  lua_State *T;
  if (ts == NULL) {
    if (err == GILUA_ENOTFOUND)
      gilua_raise(L, NOTFOUND, "interpreter %d not found", (int)id);
    if (err == GILUA_ERUNNING)
      gilua_raise(L, INTERPERROR, "interpreter %d already running", (int)id);
    luaL_error(L, "not enough memory");
  }
  T = ts->L;
  lua_settop(T, 0);
  lua_pushcfunction(T, run);
  lua_pushlightuserdata(T, j);
  if (gilua_pcall(T, 1, 0) != LUA_OK) {
    free(j->out);
    j->out = NULL;
    j->failed = 1;
    lua_pushcfunction(T, report_error);
    lua_insert(T, -2);
    lua_pushlightuserdata(T, j);
    if (lua_pcall(T, 2, 0, 0) != LUA_OK) j->out = NULL;  /* no memory */
  }
  lua_settop(T, 0);
  gilua_interp_leave(ts);
  gilua_checkinterrupt(L);
}


/* Pushes what the job brought back (in a buffer the collector frees). */
static void pushout (lua_State *L, job *j) {
  mp_buf *b = mp_newbuf(L);
  b->p = j->out;
  b->n = b->cap = j->outlen;
  j->out = NULL;
  if (b->p == NULL) luaL_error(L, "not enough memory");
  mp_decode(L, b->p, b->n);
  lua_remove(L, -2);
}


static lua_Integer checkid (lua_State *L) {
  return luaL_checkinteger(L, 1);
}


/* Encodes the function at 'fn' and the values from index 'first' on. */
static mp_buf *encode_args (lua_State *L, int first, int fn) {
  int n = lua_gettop(L) - first + 1;
  mp_buf *b;
  lua_pushvalue(L, fn);
  lua_insert(L, first);
  b = mp_newbuf(L);
  lua_insert(L, first);                 /* b, fn, args... */
  encode_values(L, first + 1, n + 1, b, "argument");
  return b;
}


/* The end of exec and call: true and the results, or false and the
** excinfo. */
static int finish (lua_State *L, job *j, int withresults) {
  mp_buf *b;
  int n;
  if (j->failed) {
    lua_pushboolean(L, 0);
    pushout(L, j);
    return 2;
  }
  lua_pushboolean(L, 1);
  if (!withresults) return 1;
  b = mp_newbuf(L);                     /* frees the bytes */
  b->p = j->out;
  b->n = b->cap = j->outlen;
  j->out = NULL;
  if (b->p == NULL) return luaL_error(L, "not enough memory");
  lua_insert(L, -2);
  n = decode_values(L, b->p, b->n);
  return n + 1;
}


/* exec(id, code): code is Lua source or a function, run there with no
** arguments, its results dropped. */
static int i_exec (lua_State *L) {
  lua_Integer id = checkid(L);
  job j;
  memset(&j, 0, sizeof j);
  if (lua_type(L, 2) == LUA_TSTRING) {
    j.kind = RUN_SOURCE;
    j.in = lua_tolstring(L, 2, &j.inlen);
  }
  else {
    mp_buf *b;
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    b = encode_args(L, 3, 2);
    j.kind = RUN_FUNCTION;
    j.in = b->p;
    j.inlen = b->n;
  }
  visit(L, id, &j);
  return finish(L, &j, 0);
}


static int i_call (lua_State *L) {
  lua_Integer id = checkid(L);
  mp_buf *b;
  job j;
  luaL_checkany(L, 2);
  memset(&j, 0, sizeof j);
  b = encode_args(L, 3, 2);
  j.kind = RUN_CALL;
  j.in = b->p;
  j.inlen = b->n;
  visit(L, id, &j);
  return finish(L, &j, 1);
}


static int i_set_main (lua_State *L) {
  lua_Integer id = checkid(L);
  mp_buf *b;
  job j;
  luaL_checktype(L, 2, LUA_TTABLE);
  memset(&j, 0, sizeof j);
  lua_settop(L, 2);
  b = mp_newbuf(L);
  ic_encode(L, 2, b, NULL);
  j.kind = RUN_SETMAIN;
  j.in = b->p;
  j.inlen = b->n;
  visit(L, id, &j);
  return finish(L, &j, 0);
}

/* }====================================================== */


static int i_create (lua_State *L) {
  lua_Integer id;
  int err = gilua_interp_create(L, &id);
  gilua_checkinterrupt(L);
  if (err != 0)
    return gilua_raise(L, INTERPERROR, "interpreter creation failed");
  lua_pushinteger(L, id);
  return 1;
}


static int i_destroy (lua_State *L) {
  lua_Integer id = checkid(L);
  int err;
  if (gilua_ts()->interp->id == id)
    return gilua_raise(L, INTERPERROR, "cannot destroy the current interpreter");
  err = gilua_interp_close(L, id);
  gilua_checkinterrupt(L);
  if (err == GILUA_ENOTFOUND)
    return gilua_raise(L, NOTFOUND, "interpreter %d not found", (int)id);
  if (err == GILUA_ERUNNING) {
    if (id == 0) return gilua_raise(L, INTERPERROR, "cannot destroy the main interpreter");
    return gilua_raise(L, INTERPERROR, "interpreter %d is running", (int)id);
  }
  if (err != 0) return luaL_error(L, "not enough memory");
  return 0;
}


static int i_list_all (lua_State *L) {
  gilua_interp_pushlist(L);
  return 1;
}


static int i_get_current (lua_State *L) {
  lua_pushinteger(L, gilua_ts()->interp->id);
  return 1;
}


static int i_get_main (lua_State *L) {
  lua_pushinteger(L, 0);
  return 1;
}


static int shareable_k (lua_State *L) {
  ic_encode(L, 1, mp_newbuf(L), NULL);
  return 0;
}


/* crossing(): whether a value is being encoded for another interpreter
** (shared objects' __mp_reduce ask). */
static int i_crossing (lua_State *L) {
  lua_pushboolean(L, ic_crossing(L));
  return 1;
}


/* dupfd(fd): a duplicate (close-on-exec) for the other interpreter's copy
** of a shared object, which owns it. */
static int i_dupfd (lua_State *L) {
  int fd = fcntl((int)luaL_checkinteger(L, 1), F_DUPFD_CLOEXEC, 0);
  if (fd < 0)
    return gilua_oserror(L, errno, "dup", NULL);
  lua_pushinteger(L, fd);
  return 1;
}


static int i_is_shareable (lua_State *L) {
  lua_settop(L, 1);
  lua_pushcfunction(L, shareable_k);
  lua_insert(L, 1);
  lua_pushboolean(L, lua_pcall(L, 1, 0, 0) == LUA_OK);
  return 1;
}


static const luaL_Reg funcs[] = {
  {"create", i_create},
  {"is_shareable", i_is_shareable},
  {"crossing", i_crossing},
  {"dupfd", i_dupfd},
  {"destroy", i_destroy},
  {"list_all", i_list_all},
  {"get_current", i_get_current},
  {"get_main", i_get_main},
  {"exec", i_exec},
  {"call", i_call},
  {"set_main", i_set_main},
  {NULL, NULL}
};


int luaopen_gilua_interpreters (lua_State *L) {
  luaL_newlib(L, funcs);
  return 1;
}
