/*
** gilua_error.c: raising exception objects from C.
**
** Classes live in Lua (vm/lua/class.lua, exceptions.lua); C code names
** them, so that a module in C and one in Lua raise the very same
** classes, and `Class:is(err)` works whichever side raised.
*/
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gilua_vm.h"


void gilua_pushexception (lua_State *L, const char *cls, const char *msg) {
  lua_getfield(L, LUA_REGISTRYINDEX, GILUA_CLASSES_KEY);
  if (lua_istable(L, -1) && lua_getfield(L, -1, cls) != LUA_TNIL) {
    lua_remove(L, -2);
    if (msg) lua_pushstring(L, msg);
    lua_call(L, msg ? 1 : 0, 1);
    return;
  }
  /* Runtime not loaded yet (or unknown class): a plain message still says
  ** what happened. */
  lua_pop(L, 2);
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
