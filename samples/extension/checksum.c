/*
** checksum.c: a C module for gilua. CRC-32 (the checksum of zip, gzip and
** PNG) over a Lua string, in two versions:
**
**   checksum.crc32(data [, rounds])          releases the GIL while it
**       computes: other threads run Lua meanwhile, and two threads calling
**       it run on two cores at once (what NumPy does in CPython);
**   checksum.crc32_holding(data [, rounds])  the same loop keeping the GIL:
**       threads calling it take turns, as pure Lua code does.
**
** Both return the CRC-32 of `data` repeated `rounds` times (default 1),
** that is of data:rep(rounds), without making that string.
**
** Built like any C module of gilua (`make` builds this one into
** build/samples/extension/checksum.so):
**
**   cc -shared -fPIC $(pkg-config --cflags gilua) checksum.c -o checksum.so
**
** and no -l flag: Lua's functions and gilua_release/gilua_acquire come from
** the gilua process that loads the module with require (package.cpath).
** See "Writing a C module" in docs/embedding.md.
*/
#include <stddef.h>
#include <stdint.h>

#include <lua.h>
#include <lauxlib.h>

#include <gilua.h>

/* The CRC-32 of IEEE 802.3, bit-reflected: polynomial 0xEDB88320. */
static uint32_t crc_table[256];

static void crc_init (void) {
  uint32_t i, k, c;
  if (crc_table[1] != 0) return;       /* filled by an earlier require */
  for (i = 0; i < 256; i++) {
    c = i;
    for (k = 0; k < 8; k++)
      c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
}

/* Plain C: no Lua here, so it may run with the GIL released. */
static uint32_t crc_rounds (const unsigned char *p, size_t len,
                            lua_Integer rounds) {
  uint32_t crc = 0xFFFFFFFFu;
  lua_Integer r;
  size_t i;
  for (r = 0; r < rounds; r++)
    for (i = 0; i < len; i++)
      crc = crc_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

/* Reads the arguments, with the GIL (Lua API calls, and errors raised
** before anything is released). */
static const unsigned char *check_args (lua_State *L, size_t *len,
                                        lua_Integer *rounds) {
  const char *s = luaL_checklstring(L, 1, len);
  *rounds = luaL_optinteger(L, 2, 1);
  luaL_argcheck(L, *rounds >= 0, 2, "rounds must not be negative");
  return (const unsigned char *)s;
}

static int l_crc32 (lua_State *L) {
  size_t len;
  lua_Integer rounds;
  uint32_t crc;
  const unsigned char *p = check_args(L, &len, &rounds);
  /* Everything the loop needs is in C variables now. The bytes of 'p' stay
  ** valid without the GIL: the string is argument 1, so it stays on this
  ** call's stack (the collector cannot free it), and Lua never moves or
  ** changes a string. Between release and acquire: no Lua API call, no
  ** error raised. */
  GILUA_BEGIN_ALLOW_THREADS(L)
    crc = crc_rounds(p, len, rounds);
  GILUA_END_ALLOW_THREADS(L)
  lua_pushinteger(L, (lua_Integer)crc);
  return 1;
}

static int l_crc32_holding (lua_State *L) {
  size_t len;
  lua_Integer rounds;
  const unsigned char *p = check_args(L, &len, &rounds);
  /* The same loop, holding the GIL throughout: a thread that wants the GIL
  ** asks after the switch interval, but this thread only notices the
  ** request back in Lua, once the loop is over. */
  lua_pushinteger(L, (lua_Integer)crc_rounds(p, len, rounds));
  return 1;
}

static const luaL_Reg funcs[] = {
  {"crc32", l_crc32},
  {"crc32_holding", l_crc32_holding},
  {NULL, NULL}
};

int luaopen_checksum (lua_State *L) {
  crc_init();
  luaL_newlib(L, funcs);
  return 1;
}
