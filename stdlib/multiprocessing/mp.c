/*
** mp.c: the C core of multiprocessing, `_multiprocessing`: processes
** (fork, wait, signals, exit), connections (length-prefixed frames over
** sockets), process-shared locks, shared memory, queues and the manager's
** sockets, one file each (see mp.h). multiprocessing.lua builds Python's
** classes on it. Every wait happens without the GIL: the other processes
** do not share our GIL, and our other threads must run.
**
** This file opens the module.
*/
#include <signal.h>

#include "mp.h"


int luaopen_gilua_multiprocessing (lua_State *L) {
  lua_newtable(L);
  mp_open_process(L);
  mp_open_connection(L);
  mp_open_synchronize(L);
  mp_open_shared_memory(L);
  mp_open_queues(L);
  mp_open_managers(L);
  mp_open_serialize(L);
  mp_open_auth(L);
  lua_pushinteger(L, SIGTERM);
  lua_setfield(L, -2, "SIGTERM");
  lua_pushinteger(L, SIGKILL);
  lua_setfield(L, -2, "SIGKILL");
  return 1;
}
