/*
** subprocess.c: `_subprocess`, the C side of Python's subprocess module
** (subprocess.lua builds Python's API on it): starting a child with
** posix_spawn, waiting for it, and the multiplexed exchange behind
** Popen.communicate, one file each (see subprocess.h). Everything that
** blocks does so with the GIL released.
**
** This file opens the module, with the names of signals.
*/
#include <signal.h>
#include <string.h>

#include "subprocess.h"


/* _subprocess.signame(n) -> "SIGKILL", or nil. */
static int l_signame (lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  const char *abbrev = (n > 0 && n < NSIG) ? sigabbrev_np((int)n) : NULL;
  if (abbrev == NULL) return 0;
  lua_pushfstring(L, "SIG%s", abbrev);
  return 1;
}


/* _subprocess.signum("SIGTERM" or "TERM") -> 15, or nil. */
static int l_signum (lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  int n;
  if (strncmp(name, "SIG", 3) == 0) name += 3;
  for (n = 1; n < NSIG; n++) {
    const char *abbrev = sigabbrev_np(n);
    if (abbrev != NULL && strcmp(abbrev, name) == 0) {
      lua_pushinteger(L, n);
      return 1;
    }
  }
  return 0;
}


int luaopen_gilua_subprocess (lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"signame", l_signame},
    {"signum", l_signum},
    {NULL, NULL}
  };
  luaL_newlib(L, funcs);
  subp_open_child(L);
  subp_open_spawn(L);
  subp_open_communicate(L);
  lua_pushinteger(L, SPEC_PIPE);
  lua_setfield(L, -2, "PIPE");
  lua_pushinteger(L, SPEC_STDOUT);
  lua_setfield(L, -2, "STDOUT");
  lua_pushinteger(L, SPEC_DEVNULL);
  lua_setfield(L, -2, "DEVNULL");
  return 1;
}
