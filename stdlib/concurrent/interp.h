/*
** interp.h: what the C files of concurrent.interpreters share.
*/
#ifndef interp_h
#define interp_h

#include "gilua_vm.h"
#include "../multiprocessing/mp.h"

/*
** Values cross from one interpreter to another as bytes of the
** multiprocessing serializer. ic_encode encodes the value at 'idx' at the
** end of 'b' (anchored by the caller) for another interpreter of this
** process: while it runs, ic_crossing(L) is true, which tells the
** __mp_reduce of shared objects (queues, shared memory) that they may
** travel as themselves. A value that cannot cross raises
** concurrent.interpreters.NotShareableError, naming it and where it sits.
*/
void ic_encode(lua_State *L, int idx, mp_buf *b, const char *what);
int ic_crossing(lua_State *L);

#endif
