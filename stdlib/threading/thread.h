/*
** thread.h: shared between the C files of _thread.
*/
#ifndef thread_h
#define thread_h

#include "gilua_vm.h"

/* lock.c: the lock types (Lock, RLock) and the C parts of threading's
** Semaphore and Condition, as fields of the module table on top. */
void thread_openlocks(lua_State *L);

#endif
