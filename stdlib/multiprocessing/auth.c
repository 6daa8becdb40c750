/*
** auth.c: the digest behind multiprocessing's authentication keys
** (connection.deliver_challenge / answer_challenge): HMAC-SHA256 from
** OpenSSL's libcrypto, and a comparison in constant time, so that a peer
** learns nothing from how long a wrong answer takes to be refused.
**
** libcrypto is loaded at the first digest (dlopen), not linked: only a
** program that authenticates a manager needs it, and its relocations alone
** cost every gilua start about 3 million instructions (3.1M of 4.6M for
** `gilua -e ''`, callgrind).
*/
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "mp.h"

#ifndef GILUA_CRYPTO_SONAME
#define GILUA_CRYPTO_SONAME "libcrypto.so.3"
#endif

typedef unsigned char *(*hmac_fn) (const EVP_MD *, const void *, int,
                                   const unsigned char *, size_t,
                                   unsigned char *, unsigned int *);
typedef const EVP_MD *(*md_fn) (void);

static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;
static hmac_fn crypto_hmac;
static md_fn crypto_sha256;


static void load_crypto (void) {
  void *h = dlopen(GILUA_CRYPTO_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) h = dlopen("libcrypto.so", RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) return;
  crypto_hmac = (hmac_fn)dlsym(h, "HMAC");
  crypto_sha256 = (md_fn)dlsym(h, "EVP_sha256");
}


/* hmac_sha256(key, message) -> the 32-byte digest */
static int l_hmac_sha256 (lua_State *L) {
  size_t klen, mlen;
  const char *key = luaL_checklstring(L, 1, &klen);
  const char *msg = luaL_checklstring(L, 2, &mlen);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (klen > INT_MAX)
    return gilua_raise(L, "ValueError", "hmac_sha256(): key too long");
  pthread_once(&crypto_once, load_crypto);
  if (crypto_hmac == NULL || crypto_sha256 == NULL)
    return gilua_raise(L, "ImportError", "hmac_sha256(): OpenSSL's libcrypto ("
                       GILUA_CRYPTO_SONAME ") could not be loaded; "
                       "install it (Debian: apt-get install libssl3)");
  if (crypto_hmac(crypto_sha256(), key, (int)klen,
                  (const unsigned char *)msg, mlen, out, &n) == NULL)
    return gilua_raise(L, "RuntimeError", "hmac_sha256(): HMAC failed");
  lua_pushlstring(L, (const char *)out, n);
  return 1;
}


/* compare_digest(a, b) -> whether the two strings are equal, in a time
** that depends on their lengths only: every byte is looked at, and the
** differences are gathered without a branch on them. */
static int l_compare_digest (lua_State *L) {
  size_t la, lb, i;
  const char *a = luaL_checklstring(L, 1, &la);
  const char *b = luaL_checklstring(L, 2, &lb);
  volatile unsigned char diff = (unsigned char)(la != lb);
  const char *c = la == lb ? b : a;  /* same length as a: compare a to itself */
  for (i = 0; i < la; i++)
    diff |= (unsigned char)(a[i] ^ c[i]);
  lua_pushboolean(L, diff == 0);
  return 1;
}


int mp_open_auth (lua_State *L) {
  lua_pushcfunction(L, l_hmac_sha256);
  lua_setfield(L, -2, "hmac_sha256");
  lua_pushcfunction(L, l_compare_digest);
  lua_setfield(L, -2, "compare_digest");
  return 0;
}
