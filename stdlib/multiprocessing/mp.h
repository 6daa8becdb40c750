/*
** mp.h: shared between the C files of _multiprocessing.
*/
#ifndef mp_h
#define mp_h

#include <stddef.h>

#include "gilua_vm.h"

/*
** A growable byte buffer in a userdata (so an error frees it with the
** rest). Bytes may be read and written without the GIL while the userdata
** stays anchored on the stack.
*/
typedef struct mp_buf {
  char *p;
  size_t n, cap;
} mp_buf;

mp_buf *mp_newbuf(lua_State *L);        /* pushes the userdata */
void mp_bufreserve(lua_State *L, mp_buf *b, size_t extra);
void mp_bufadd(lua_State *L, mp_buf *b, const void *s, size_t len);

/* serialize.c: encodes the value at 'idx' at the end of 'b' (which is
** anchored elsewhere on the stack); raises TypeError naming the value that
** cannot travel. */
void mp_encode(lua_State *L, int idx, mp_buf *b);
/* Decodes one value from s[0..len) and pushes it; raises ValueError on
** malformed input. */
void mp_decode(lua_State *L, const char *s, size_t len);

int mp_open_serialize(lua_State *L);    /* dumps, loads into the table on top */
int mp_open_auth(lua_State *L);         /* hmac_sha256, compare_digest (auth.c) */

#endif
