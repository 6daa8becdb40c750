/*
** auth.c: the digest behind multiprocessing's authentication keys
** (connection.deliver_challenge / answer_challenge): HMAC-SHA256 from
** OpenSSL's libcrypto, and a comparison in constant time, so that a peer
** learns nothing from how long a wrong answer takes to be refused.
*/
#include <limits.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "mp.h"


/* hmac_sha256(key, message) -> the 32-byte digest */
static int l_hmac_sha256 (lua_State *L) {
  size_t klen, mlen;
  const char *key = luaL_checklstring(L, 1, &klen);
  const char *msg = luaL_checklstring(L, 2, &mlen);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (klen > INT_MAX)
    return gilua_raise(L, "ValueError", "hmac_sha256(): key too long");
  if (HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, mlen,
           out, &n) == NULL)
    return gilua_raise(L, "RuntimeError", "hmac_sha256(): HMAC failed");
  lua_pushlstring(L, (const char *)out, n);
  return 1;
}


/* compare_digest(a, b) -> whether the two strings are equal, in a time
** that depends on their lengths only */
static int l_compare_digest (lua_State *L) {
  size_t la, lb;
  const char *a = luaL_checklstring(L, 1, &la);
  const char *b = luaL_checklstring(L, 2, &lb);
  lua_pushboolean(L, la == lb && CRYPTO_memcmp(a, b, la) == 0);
  return 1;
}


int mp_open_auth (lua_State *L) {
  lua_pushcfunction(L, l_hmac_sha256);
  lua_setfield(L, -2, "hmac_sha256");
  lua_pushcfunction(L, l_compare_digest);
  lua_setfield(L, -2, "compare_digest");
  return 0;
}
