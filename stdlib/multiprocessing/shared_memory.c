/*
** shared_memory.c: shared memory for _multiprocessing: the blocks behind
** locks, queues, Value and Array (memfds, kept across fork and passed to
** spawned children), and named POSIX shared memory for
** shared_memory.SharedMemory.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "mp.h"

#define SHM_MT "_multiprocessing.SharedMemory"
#define BUF_MT "_multiprocessing.SharedBuffer"


/* Shared memory on a memfd (kept open in *fd, close-on-exec): fork keeps
** the mapping, and a spawned child maps the same memfd, passed to it. */
void *mp_shmalloc (lua_State *L, size_t size, int *fd) {
  void *p;
  int e;
  *fd = memfd_create("gilua-shared", MFD_CLOEXEC);
  if (*fd < 0) gilua_oserror(L, errno, "memfd_create", NULL);
  if (ftruncate(*fd, (off_t)size) != 0) {
    e = errno; close(*fd); *fd = -1;
    gilua_oserror(L, e, "ftruncate", NULL);
  }
  p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
  if (p == MAP_FAILED) {
    e = errno; close(*fd); *fd = -1;
    gilua_oserror(L, e, "mmap", NULL);
  }
  return p;
}


/* Maps a memfd passed by the parent; it must hold at least 'size' bytes. */
void *mp_shmmap (lua_State *L, int fd, size_t size) {
  struct stat st;
  void *p;
  if (fstat(fd, &st) != 0) gilua_oserror(L, errno, "fstat", NULL);
  if ((size_t)st.st_size < size)
    gilua_raise(L, "ValueError", "shared memory block too small");
  p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) gilua_oserror(L, errno, "mmap", NULL);
  return p;
}



/*
** {==================================================================
** Shared memory for Value and Array: anonymous shared mappings, kept
** across fork; elements are read and written by type code
** ===================================================================
*/

typedef struct shm {
  char *p;
  size_t size;     /* of the mapping */
  lua_Integer n;   /* elements */
  char tc;
  int elsize;
  int fd;          /* the memfd */
} shm;


static int elsize_of (char tc) {
  switch (tc) {
    case 'b': case 'B': case 'c': return 1;
    case 'h': case 'H': return 2;
    case 'i': case 'I': case 'f': return 4;
    case 'l': case 'L': case 'q': case 'Q': case 'd': return 8;
    default: return 0;
  }
}


/* rawshm(typecode, n) */
static int l_rawshm (lua_State *L) {
  const char *tc = luaL_checkstring(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  int es = elsize_of(tc[0]);
  shm *m;
  if (es == 0 || tc[1] != '\0')
    return gilua_raise(L, "TypeError", "bad typecode (must be b, B, h, H, i, I, l, L, q, Q, f, d or c): '%s'", tc);
  if (n < 0 || n > (lua_Integer)(SIZE_MAX / 16))
    return gilua_raise(L, "ValueError", "bad size: %I", (LUAI_UACINT)n);
  m = lua_newuserdatauv(L, sizeof *m, 0);
  m->p = NULL;
  m->fd = -1;
  luaL_setmetatable(L, SHM_MT);
  m->size = (size_t)n * (size_t)es;
  if (m->size == 0) m->size = 1;
  if (lua_isinteger(L, 3)) {   /* rawshm(typecode, n, fd): passed to a spawned child */
    int fd = (int)lua_tointeger(L, 3);
    m->p = mp_shmmap(L, fd, m->size);
    m->fd = fd;
  }
  else m->p = mp_shmalloc(L, m->size, &m->fd);
  m->n = n;
  m->tc = tc[0];
  m->elsize = es;
  return 1;
}


static shm *checkshm (lua_State *L, lua_Integer *i) {
  shm *m = luaL_checkudata(L, 1, SHM_MT);
  *i = luaL_checkinteger(L, 2);
  if (*i < 1 || *i > m->n)
    gilua_raise(L, "IndexError", "array index out of range: %I (the array has %I elements)",
                (LUAI_UACINT)*i, (LUAI_UACINT)m->n);
  return m;
}


static int shm_get (lua_State *L) {
  lua_Integer i;
  shm *m = checkshm(L, &i);
  char *p = m->p + (i - 1) * m->elsize;
  switch (m->tc) {
    case 'b': lua_pushinteger(L, *(int8_t *)p); break;
    case 'B': lua_pushinteger(L, *(uint8_t *)p); break;
    case 'c': lua_pushlstring(L, p, 1); break;
    case 'h': lua_pushinteger(L, *(int16_t *)p); break;
    case 'H': lua_pushinteger(L, *(uint16_t *)p); break;
    case 'i': lua_pushinteger(L, *(int32_t *)p); break;
    case 'I': lua_pushinteger(L, *(uint32_t *)p); break;
    case 'l': case 'q': lua_pushinteger(L, *(int64_t *)p); break;
    case 'L': case 'Q': lua_pushinteger(L, (lua_Integer)*(uint64_t *)p); break;
    case 'f': lua_pushnumber(L, *(float *)p); break;
    case 'd': lua_pushnumber(L, *(double *)p); break;
  }
  return 1;
}


static int shm_set (lua_State *L) {
  lua_Integer i;
  shm *m = checkshm(L, &i);
  char *p = m->p + (i - 1) * m->elsize;
  if (m->tc == 'c') {
    size_t len;
    const char *s = lua_tolstring(L, 3, &len);
    if (s == NULL || len != 1)
      return gilua_raise(L, "TypeError", "one character string expected");
    *p = s[0];
    return 0;
  }
  if (m->tc == 'f' || m->tc == 'd') {
    lua_Number x;
    if (lua_type(L, 3) != LUA_TNUMBER)
      return gilua_raise(L, "TypeError", "must be a number, not %s", luaL_typename(L, 3));
    x = lua_tonumber(L, 3);
    if (m->tc == 'f') *(float *)p = (float)x;
    else *(double *)p = x;
    return 0;
  }
  if (!lua_isinteger(L, 3)) {
    if (lua_type(L, 3) == LUA_TNUMBER)
      return gilua_raise(L, "TypeError", "'float' object cannot be interpreted as an integer");
    return gilua_raise(L, "TypeError", "an integer is required, not %s", luaL_typename(L, 3));
  }
  {
    lua_Integer v = lua_tointeger(L, 3);
    switch (m->tc) {
      case 'b': *(int8_t *)p = (int8_t)v; break;
      case 'B': *(uint8_t *)p = (uint8_t)v; break;
      case 'h': *(int16_t *)p = (int16_t)v; break;
      case 'H': *(uint16_t *)p = (uint16_t)v; break;
      case 'i': *(int32_t *)p = (int32_t)v; break;
      case 'I': *(uint32_t *)p = (uint32_t)v; break;
      default: *(int64_t *)p = (int64_t)v; break;
    }
  }
  return 0;
}


static int shm_len (lua_State *L) {
  shm *m = luaL_checkudata(L, 1, SHM_MT);
  lua_pushinteger(L, m->n);
  return 1;
}


/* raw bytes, for 'c' arrays: value and raw */
static int shm_bytes (lua_State *L) {
  shm *m = luaL_checkudata(L, 1, SHM_MT);
  lua_pushlstring(L, m->p, (size_t)(m->n * m->elsize));
  return 1;
}


static int shm_gc (lua_State *L) {
  shm *m = luaL_checkudata(L, 1, SHM_MT);
  if (m->p) munmap(m->p, m->size);
  m->p = NULL;
  m->n = 0;
  if (m->fd >= 0) close(m->fd);
  m->fd = -1;
  return 0;
}


static int shm_typecode (lua_State *L) {
  shm *m = luaL_checkudata(L, 1, SHM_MT);
  lua_pushlstring(L, &m->tc, 1);
  return 1;
}


static int shm_fd (lua_State *L) {
  shm *m = luaL_checkudata(L, 1, SHM_MT);
  lua_pushinteger(L, m->fd);
  return 1;
}


static const luaL_Reg shm_methods[] = {
  {"get", shm_get},
  {"set", shm_set},
  {"len", shm_len},
  {"bytes", shm_bytes},
  {"_fd", shm_fd},
  {"_typecode", shm_typecode},
  {NULL, NULL}
};

/* }================================================================== */



/*
** {==================================================================
** Named shared memory (shared_memory.SharedMemory): shm_open + mmap.
** The buffer is indexed by byte, 1..size, as Lua strings are.
** ===================================================================
*/


typedef struct shbuf {
  unsigned char *p;
  size_t size;
} shbuf;


/* shm_open(name, create, size) -> buffer, size */
static int l_shm_open (lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  int create = lua_toboolean(L, 2);
  lua_Integer size = luaL_optinteger(L, 3, 0);
  int fd, e;
  struct stat st;
  shbuf *b;
  if (create && size <= 0)
    return gilua_raise(L, "ValueError", "'size' must be a positive number different from zero");
  b = lua_newuserdatauv(L, sizeof *b, 0);
  b->p = NULL;
  b->size = 0;
  luaL_setmetatable(L, BUF_MT);
  fd = shm_open(name, create ? O_CREAT | O_EXCL | O_RDWR : O_RDWR, 0600);
  if (fd < 0) return gilua_oserror(L, errno, "shm_open", name);
  if (create && ftruncate(fd, (off_t)size) != 0) {
    e = errno;
    close(fd);
    shm_unlink(name);
    return gilua_oserror(L, e, "ftruncate", NULL);
  }
  if (fstat(fd, &st) != 0) { e = errno; close(fd); return gilua_oserror(L, e, "fstat", NULL); }
  if (st.st_size > 0) {
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {   /* a block we made must not stay behind */
      e = errno;
      close(fd);
      if (create) shm_unlink(name);
      return gilua_oserror(L, e, "mmap", NULL);
    }
    b->p = p;
    b->size = (size_t)st.st_size;
  }
  close(fd);
  lua_pushinteger(L, (lua_Integer)b->size);
  return 2;
}


static int l_shm_unlink (lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  if (shm_unlink(name) != 0) return gilua_oserror(L, errno, "shm_unlink", name);
  return 0;
}


static shbuf *checkbuf (lua_State *L) {
  shbuf *b = luaL_checkudata(L, 1, BUF_MT);
  if (b->p == NULL && b->size == 0)
    gilua_raise(L, "ValueError", "operation forbidden on released memoryview object");
  return b;
}


static size_t byte_index (lua_State *L, shbuf *b, int arg) {
  lua_Integer i = luaL_checkinteger(L, arg);
  if (i < 1 || (size_t)i > b->size)
    gilua_raise(L, "IndexError", "index out of range: %I (the buffer has %I bytes)",
                (LUAI_UACINT)i, (LUAI_UACINT)b->size);
  return (size_t)(i - 1);
}


static int buf_index (lua_State *L) {
  shbuf *b = luaL_checkudata(L, 1, BUF_MT);
  if (lua_isinteger(L, 2)) {
    size_t i;
    checkbuf(L);
    i = byte_index(L, b, 2);
    lua_pushinteger(L, b->p[i]);
    return 1;
  }
  lua_getfield(L, lua_upvalueindex(1), "methods");
  lua_pushvalue(L, 2);
  lua_gettable(L, -2);
  return 1;
}


static int buf_newindex (lua_State *L) {
  shbuf *b = checkbuf(L);
  size_t i = byte_index(L, b, 2);
  lua_Integer v = luaL_checkinteger(L, 3);
  if (v < 0 || v > 255) return gilua_raise(L, "ValueError", "byte must be in range(0, 256)");
  b->p[i] = (unsigned char)v;
  return 0;
}


static int buf_len (lua_State *L) {
  shbuf *b = luaL_checkudata(L, 1, BUF_MT);
  lua_pushinteger(L, (lua_Integer)b->size);
  return 1;
}


/* buf:read([i [, j]]) -> the bytes i..j as a string (string.sub's rules) */
static int buf_read (lua_State *L) {
  shbuf *b = checkbuf(L);
  lua_Integer n = (lua_Integer)b->size;
  lua_Integer i = luaL_optinteger(L, 2, 1), j = luaL_optinteger(L, 3, n);
  if (i < 0) i = n + i + 1;
  if (j < 0) j = n + j + 1;
  if (i < 1) i = 1;
  if (j > n) j = n;
  if (i > j) lua_pushliteral(L, "");
  else lua_pushlstring(L, (const char *)b->p + i - 1, (size_t)(j - i + 1));
  return 1;
}


/* buf:write(i, s): the bytes of s from position i */
static int buf_write (lua_State *L) {
  shbuf *b = checkbuf(L);
  lua_Integer i = luaL_checkinteger(L, 2);
  size_t len;
  const char *s = luaL_checklstring(L, 3, &len);
  if (i < 1 || (size_t)(i - 1) + len > b->size)
    return gilua_raise(L, "ValueError", "memoryview assignment: out of range");
  memcpy(b->p + i - 1, s, len);
  return 0;
}


static int buf_release (lua_State *L) {
  shbuf *b = luaL_checkudata(L, 1, BUF_MT);
  if (b->p) munmap(b->p, b->size);
  b->p = NULL;
  b->size = 0;
  return 0;
}


static const luaL_Reg buf_methods[] = {
  {"read", buf_read},
  {"write", buf_write},
  {"release", buf_release},
  {NULL, NULL}
};

/* }================================================================== */



static const luaL_Reg funcs[] = {
  {"rawshm", l_rawshm},
  {"shm_open", l_shm_open},
  {"shm_unlink", l_shm_unlink},
  {NULL, NULL}
};


void mp_open_shared_memory (lua_State *L) {
  static const luaL_Reg shm_meta[] = {{"__gc", shm_gc}, {NULL, NULL}};
  static const luaL_Reg buf_meta[] = {
    {"__gc", buf_release}, {"__index", buf_index}, {"__newindex", buf_newindex},
    {"__len", buf_len}, {NULL, NULL}
  };
  gilua_newclass(L, SHM_MT, shm_methods, shm_meta);
  gilua_newclass(L, BUF_MT, buf_methods, buf_meta);
  lua_pop(L, 2);
  luaL_setfuncs(L, funcs, 0);
}
