/*
** gilua_error.c: raising exception objects from C, and the runtime that
** makes their classes.
**
** Classes live in Lua (vm/lua/class.lua, exceptions.lua); C code names
** them, so that a module in C and one in Lua raise the very same
** classes, and `Class:is(err)` works whichever side raised.
*/
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gilua_vm.h"


/*
** {==================================================================
** The runtime: the class model and the built-in exception classes
** ===================================================================
*/

/*
** Every interpreter has them. The main one (and one a C host opens) makes
** them when it opens; one made from Lua when it first needs them: at its
** first exception raised from C (gilua_pushexception), its first class
** crossing into it (the serializer), its first unknown global (a hook on
** _G, which then goes away): making some forty classes is most of what
** starting an interpreter costs, and many interpreters never raise.
*/
#define RUNTIME "gilua.exceptions"

int gilua_runtime (lua_State *L) {
  int loaded;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  loaded = lua_getfield(L, -1, RUNTIME) != LUA_TNIL;
  lua_pop(L, 2);
  if (loaded) return 0;
  lua_getglobal(L, "require");
  lua_pushliteral(L, RUNTIME);
  lua_call(L, 1, 0);
  return 1;
}


/* __index of _G until the runtime is there: the hook goes (if it is still
** _G's metatable), the runtime comes, and the global is looked up again. */
static int lazy_global (lua_State *L) {
  if (lua_getmetatable(L, 1) && lua_rawequal(L, -1, lua_upvalueindex(1))) {
    lua_pushnil(L);
    lua_setmetatable(L, 1);
  }
  gilua_runtime(L);
  lua_settop(L, 2);
  lua_rawget(L, 1);
  return 1;
}


void gilua_lazyruntime (lua_State *L) {
  lua_pushglobaltable(L);
  lua_createtable(L, 0, 1);
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, lazy_global, 1);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
}

/* }================================================================== */


/* Pushes the class named 'cls' (nil if there is none). */
static int getclass (lua_State *L, const char *cls) {
  lua_getfield(L, LUA_REGISTRYINDEX, GILUA_CLASSES_KEY);
  if (!lua_istable(L, -1)) return LUA_TNIL;
  lua_getfield(L, -1, cls);
  lua_remove(L, -2);
  return lua_type(L, -1);
}


void gilua_pushexception (lua_State *L, const char *cls, const char *msg) {
  if (getclass(L, cls) == LUA_TNIL) {  /* the runtime may come when needed */
    lua_pop(L, 1);
    if (gilua_runtime(L)) getclass(L, cls);
    else lua_pushnil(L);
  }
  if (!lua_isnil(L, -1)) {
    if (msg) lua_pushstring(L, msg);
    lua_call(L, msg ? 1 : 0, 1);
    return;
  }
  /* Unknown class: a plain message still says what happened. */
  lua_pop(L, 1);
  if (msg) lua_pushfstring(L, "%s: %s", cls, msg);
  else lua_pushstring(L, cls);
}


int gilua_raise (lua_State *L, const char *cls, const char *fmt, ...) {
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    gilua_pushexception(L, cls, lua_tostring(L, -1));
  } else gilua_pushexception(L, cls, NULL);
  return lua_error(L);
}


/*
** Python's OSError subclasses by errno (the table CPython builds at start-
** up, Objects/exceptions.c): the same errno gives the same class whichever
** module failed.
*/
static const struct { int err; const char *cls; } errclasses[] = {
  {EAGAIN, "BlockingIOError"},
#if EWOULDBLOCK != EAGAIN
  {EWOULDBLOCK, "BlockingIOError"},
#endif
  {EALREADY, "BlockingIOError"},
  {EINPROGRESS, "BlockingIOError"},
  {EPIPE, "BrokenPipeError"},
  {ESHUTDOWN, "BrokenPipeError"},
  {ECHILD, "ChildProcessError"},
  {ECONNABORTED, "ConnectionAbortedError"},
  {ECONNREFUSED, "ConnectionRefusedError"},
  {ECONNRESET, "ConnectionResetError"},
  {EEXIST, "FileExistsError"},
  {ENOENT, "FileNotFoundError"},
  {EISDIR, "IsADirectoryError"},
  {ENOTDIR, "NotADirectoryError"},
  {EINTR, "InterruptedError"},
  {EACCES, "PermissionError"},
  {EPERM, "PermissionError"},
  {ESRCH, "ProcessLookupError"},
  {ETIMEDOUT, "TimeoutError"},
};


const char *gilua_oserror_class (int err) {
  size_t i;
  for (i = 0; i < sizeof errclasses / sizeof errclasses[0]; i++)
    if (errclasses[i].err == err) return errclasses[i].cls;
  return "OSError";
}


void gilua_pushoserror (lua_State *L, int err, const char *call,
                        const char *filename) {
  const char *msg = strerror(err);
  lua_getfield(L, LUA_REGISTRYINDEX, GILUA_CLASSES_KEY);
  if (!lua_istable(L, -1) ||
      lua_getfield(L, -1, gilua_oserror_class(err)) == LUA_TNIL) {
    lua_pop(L, 2);  /* runtime not loaded: a plain message */
    if (filename) lua_pushfstring(L, "[Errno %d] %s: '%s'", err, msg, filename);
    else lua_pushfstring(L, "[Errno %d] %s%s%s", err, call ? call : "",
                         call ? ": " : "", msg);
    return;
  }
  lua_remove(L, -2);
  lua_pushinteger(L, err);
  lua_pushstring(L, msg);
  if (filename) lua_pushstring(L, filename);
  lua_call(L, filename ? 3 : 2, 1);
  if (filename == NULL && call != NULL) {
    lua_pushfstring(L, "[Errno %d] %s: %s", err, call, msg);
    lua_setfield(L, -2, "message");
  }
}


int gilua_oserror (lua_State *L, int err, const char *call,
                   const char *filename) {
  gilua_pushoserror(L, err, call, filename);
  return lua_error(L);
}
