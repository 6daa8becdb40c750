/*
** serialize.c: the one format in which Lua values move between processes
** (pipes, queues, pools, the manager, spawn). Python pickles; this is its
** Lua counterpart.
**
** A message is a magic byte, a version byte, then one value:
**   nil, false, true             one tag byte
**   integer, float               tag + 8 bytes (native order: both ends run
**                                on the same machine), kept apart
**   string                       tag + varint length + bytes
**   table                        tag + varint n + n array values + key/value
**                                pairs + END + metatable (a value)
**   function (Lua)               tag + u32 length + u64 check + lua_dump
**                                chunk + number of upvalues + the upvalues;
**                                an upvalue shared with a function sent
**                                before (lua_upvalueid) is a JOIN, so shared
**                                cells stay shared
**   reference                    tag + varint id: the n-th table or function
**                                of the message (shared references, cycles)
**   globals                      the sender's _G: the receiver's _G (so a
**                                function's _ENV is the child's globals)
**   class                        tag + name: a class registered by name
**                                (Exception:extend("x.Y")), the receiver's own
**   subclass                     tag + parent class + the fields that
**                                differ from the parent's + END: a class
**                                made with extend() and no name of its
**                                own, made again at the receiver with
**                                parent:extend()
**
** A class is known by identity (gilua.class lists every class it makes),
** never by its shape: a plain table with a field __super is data.
**   reduced userdata             tag + function + state: a userdata whose
**                                metatable has __mp_reduce, which returns
**                                a function found by name and a state; the
**                                receiver calls function(state)
**   name                         tag + module + key: a module, or a
**                                function, userdata or class that a loaded
**                                module exports (C functions, io.stdout,
**                                module functions), found by name at the
**                                receiver as Python pickles functions by
**                                reference. Data tables always travel by
**                                value, even a module's.
**
** Depth: tables, functions, subclasses and reduced userdata hold values;
** one nested in MAXDEPTH others is refused, by the encoder (TypeError, so
** nothing is sent that the receiver would refuse) and by the decoder alike.
**
** Decoding checks every length and tag, so malformed input is a ValueError,
** never a crash (tests/fuzz/ fuzzes it). Lua does not verify bytecode, so
** each chunk carries a check (FNV-1a) that catches corruption; like
** pickle, messages must come from a trusted sender (the manager
** authenticates its clients before it decodes anything of theirs).
*/
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mp.h"

#define MAGIC 0xC5
#define VERSION 1
#define MAXDEPTH 200

enum { T_NIL, T_FALSE, T_TRUE, T_INT, T_FLT, T_STR, T_TABLE, T_END, T_REF,
       T_FUNC, T_GLOBALS, T_CLASS, T_NAME, T_JOIN, T_SUBCLASS, T_REDUCE };

#define NAMES_KEY "_multiprocessing.names"


/* Pushes the set of every class (gilua.class keeps it in Object's
** metaclass), or an empty table before gilua.class is loaded. */
static void push_allclasses (lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "gilua.class");
  if (lua_getmetatable(L, -1)) {
    lua_pushliteral(L, "__classes");
    if (lua_rawget(L, -2) == LUA_TTABLE) {
      lua_replace(L, -4);
      lua_pop(L, 2);
      return;
    }
    lua_pop(L, 2);
  }
  lua_pop(L, 2);
  lua_newtable(L);
}


/* Is the value at idx a class (identity, in the set at 'set')? */
static int isclass (lua_State *L, int set, int idx) {
  int yes;
  if (lua_type(L, idx) != LUA_TTABLE) return 0;
  lua_pushvalue(L, idx);
  yes = lua_rawget(L, set) != LUA_TNIL;
  lua_pop(L, 1);
  return yes;
}


/*
** {==================================================================
** Buffers
** ===================================================================
*/

static int buf_gc (lua_State *L) {
  mp_buf *b = lua_touserdata(L, 1);
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
  return 0;
}


mp_buf *mp_newbuf (lua_State *L) {
  mp_buf *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->p = NULL;
  b->n = b->cap = 0;
  if (luaL_newmetatable(L, "_multiprocessing.buf")) {
    lua_pushcfunction(L, buf_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return b;
}


void mp_bufreserve (lua_State *L, mp_buf *b, size_t extra) {
  size_t need = b->n + extra, cap = b->cap ? b->cap : 256;
  char *p;
  if (need <= b->cap) return;
  while (cap < need) cap *= 2;
  p = realloc(b->p, cap);
  if (p == NULL) luaL_error(L, "not enough memory");
  b->p = p;
  b->cap = cap;
}


void mp_bufadd (lua_State *L, mp_buf *b, const void *s, size_t len) {
  mp_bufreserve(L, b, len);
  memcpy(b->p + b->n, s, len);
  b->n += len;
}


static uint64_t fnv1a (const char *s, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  size_t i;
  for (i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

/* }================================================================== */


/*
** {==================================================================
** Names of module values
** ===================================================================
*/

static int loaded_count (lua_State *L) {
  int n = 0;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushnil(L);
  while (lua_next(L, -2)) { lua_pop(L, 1); n++; }
  lua_pop(L, 1);
  return n;
}


/* names[v] = {module, key} (key nil for a module itself); a module's own
** entry wins over a member's. Only C functions and userdata are taken from
** _G: the user's global tables and functions are data, sent by value. Of a
** module's tables only its classes: its data tables travel by value. */
static void add_members (lua_State *L, int names, int classes,
                         const char *mod, int isG) {
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    int t = lua_type(L, -1);
    int want = isG ? (t == LUA_TUSERDATA || lua_iscfunction(L, -1))
                   : (t == LUA_TFUNCTION || t == LUA_TUSERDATA ||
                      isclass(L, classes, lua_gettop(L)));
    if (want && lua_type(L, -2) == LUA_TSTRING) {
      lua_pushvalue(L, -1);
      if (lua_rawget(L, names) == LUA_TNIL) {
        lua_pushvalue(L, -2);
        lua_createtable(L, 2, 0);
        lua_pushstring(L, mod);
        lua_rawseti(L, -2, 1);
        lua_pushvalue(L, -5);
        lua_rawseti(L, -2, 2);
        lua_rawset(L, names);
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
}


/* Pushes the names table, rebuilt when modules were loaded since. */
static void push_names (lua_State *L) {
  int n = loaded_count(L), names, classes;
  lua_getfield(L, LUA_REGISTRYINDEX, NAMES_KEY);
  if (lua_istable(L, -1)) {
    lua_rawgeti(L, -1, 0);
    if (lua_tointeger(L, -1) == n) { lua_pop(L, 1); return; }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_newtable(L);
  names = lua_gettop(L);
  push_allclasses(L);
  classes = lua_gettop(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  /* modules first */
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TTABLE) {
      lua_pushvalue(L, -1);
      lua_createtable(L, 1, 0);
      lua_pushvalue(L, -4);
      lua_rawseti(L, -2, 1);
      lua_rawset(L, names);
    }
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TTABLE) {
      const char *mod = lua_tostring(L, -2);
      add_members(L, names, classes, mod, strcmp(mod, "_G") == 0);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  lua_pushinteger(L, n);
  lua_rawseti(L, names, 0);
  lua_pushvalue(L, names);
  lua_setfield(L, LUA_REGISTRYINDEX, NAMES_KEY);
}

/* }================================================================== */


/*
** {==================================================================
** Encoding
** ===================================================================
*/

typedef struct enc {
  lua_State *L;
  mp_buf *b;
  int refs;          /* table: object -> id */
  int upids;         /* table: upvalue id -> function id * 256 + index */
  int names;         /* slot of the names table ... */
  int have_names;    /* ... filled when first needed */
  int classes;       /* registry of named classes */
  int allclasses;    /* every class (a set) */
  lua_Integer nextid;
  int depth;
  char what[160];    /* on failure: what could not be sent */
  char path[256];    /* ... and where, built while unwinding */
} enc;


static void put_byte (enc *e, int c) {
  mp_buf *b = e->b;
  if (b->n == b->cap) mp_bufreserve(e->L, b, 1);
  b->p[b->n++] = (char)c;
}


static void put_varint (enc *e, uint64_t v) {
  char tmp[10];
  int n = 0;
  do {
    tmp[n++] = (char)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
    v >>= 7;
  } while (v);
  mp_bufadd(e->L, e->b, tmp, n);
}


static void put_lstr (enc *e, const char *s, size_t len) {
  put_varint(e, len);
  mp_bufadd(e->L, e->b, s, len);
}


/* Prepends a path segment for the key at 'k' (called while unwinding). */
static void prepend (enc *e, const char *seg) {
  size_t ls = strlen(seg), lp = strlen(e->path);
  if (ls + lp + 1 > sizeof e->path) return;
  memmove(e->path + ls, e->path, lp + 1);
  memcpy(e->path, seg, ls);
}


static void prepend_key (enc *e, int k) {
  lua_State *L = e->L;
  char seg[80];
  if (lua_type(L, k) == LUA_TSTRING) {
    const char *s = lua_tostring(L, k);
    snprintf(seg, sizeof seg, ".%.70s", s);
  }
  else if (lua_isinteger(L, k))
    snprintf(seg, sizeof seg, "[%lld]", (long long)lua_tointeger(L, k));
  else
    snprintf(seg, sizeof seg, "[<%s key>]", luaL_typename(L, k));
  prepend(e, seg);
}


static int cannot (enc *e, int idx) {
  lua_State *L = e->L;
  const char *kind = luaL_typename(L, idx);
  const char *name = NULL;
  if (lua_type(L, idx) == LUA_TFUNCTION) kind = "C function";
  else if (lua_type(L, idx) == LUA_TTHREAD) kind = "coroutine";
  if (luaL_getmetafield(L, idx, "__name") != LUA_TNIL) {
    if (lua_type(L, -1) == LUA_TSTRING) name = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  if (name)
    snprintf(e->what, sizeof e->what, "%s (%.60s: %p)", kind, name,
             lua_topointer(L, idx));
  else
    snprintf(e->what, sizeof e->what, "%s (%p)", kind, lua_topointer(L, idx));
  return -1;
}


/* Value 'idx' known by name? Writes it and returns 1. */
static int by_name (enc *e, int idx) {
  lua_State *L = e->L;
  if (!e->have_names) {  /* into its reserved slot: the stack stays balanced */
    push_names(L);
    lua_replace(L, e->names);
    e->have_names = 1;
  }
  lua_pushvalue(L, idx);
  if (lua_rawget(L, e->names) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  put_byte(e, T_NAME);
  lua_rawgeti(L, -1, 1);
  put_lstr(e, lua_tostring(L, -1), lua_rawlen(L, -1));
  if (lua_rawgeti(L, -2, 2) == LUA_TSTRING) {
    put_byte(e, T_STR);
    put_lstr(e, lua_tostring(L, -1), lua_rawlen(L, -1));
  }
  else put_byte(e, T_NIL);
  lua_pop(L, 3);
  return 1;
}


/* A registered class (its own __name maps back to it)? */
static int is_class (enc *e, int idx) {
  lua_State *L = e->L;
  int yes = 0;
  lua_pushliteral(L, "__name");
  if (lua_rawget(L, idx) == LUA_TSTRING) {
    lua_pushvalue(L, -1);
    lua_rawget(L, e->classes);
    yes = lua_rawequal(L, -1, idx);
    lua_pop(L, 1);
    if (yes) {
      put_byte(e, T_CLASS);
      put_lstr(e, lua_tostring(L, -1), lua_rawlen(L, -1));
    }
  }
  lua_pop(L, 1);
  return yes;
}


static int enc_value (enc *e, int idx);


/* Before a value that holds others: refused past MAXDEPTH, as the decoder
** would refuse it. */
static int enter (enc *e) {
  if (e->depth >= MAXDEPTH) {
    snprintf(e->what, sizeof e->what, "a value nested more than %d deep",
             MAXDEPTH);
    return -1;
  }
  e->depth++;
  return 0;
}

/* Keys that extend() makes itself. */
static int made_by_extend (const char *k) {
  static const char *const own[] = {"__index", "__newindex", "__super",
    "__name", "__getters", "__setters", NULL};
  int i;
  for (i = 0; own[i]; i++) if (strcmp(k, own[i]) == 0) return 1;
  return 0;
}


/* A class made by extend() (its __super is a table) sent as its parent
** plus what it adds; 0 if 'idx' is not such a class. */
static int enc_subclass (enc *e, int idx, int *r) {
  lua_State *L = e->L;
  int parent;
  if (!isclass(L, e->allclasses, idx)) return 0;
  lua_pushliteral(L, "__super");
  if (lua_rawget(L, idx) != LUA_TTABLE) { lua_pop(L, 1); return 0; }
  parent = lua_gettop(L);
  if (enter(e) != 0) { *r = -1; return 1; }
  put_byte(e, T_SUBCLASS);
  if (enc_value(e, parent) != 0) { prepend(e, "(parent class)"); *r = -1; return 1; }
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int k = lua_gettop(L) - 1, same;
    if (lua_type(L, k) == LUA_TSTRING && made_by_extend(lua_tostring(L, k))) {
      lua_pop(L, 1);
      continue;
    }
    lua_pushvalue(L, k);
    lua_gettable(L, parent);          /* inherited as it is? */
    same = lua_rawequal(L, -1, k + 1);
    lua_pop(L, 1);
    if (same) { lua_pop(L, 1); continue; }
    if (enc_value(e, k) != 0 || enc_value(e, k + 1) != 0) {
      prepend_key(e, k);
      *r = -1;
      return 1;
    }
    lua_pop(L, 1);
  }
  put_byte(e, T_END);
  lua_pop(L, 1);
  e->depth--;
  *r = 0;
  return 1;
}

/* Already sent in this message? Writes a reference. Else gives it an id. */
static int seen (enc *e, int idx) {
  lua_State *L = e->L;
  lua_pushvalue(L, idx);
  if (lua_rawget(L, e->refs) == LUA_TNUMBER) {
    put_byte(e, T_REF);
    put_varint(e, (uint64_t)lua_tointeger(L, -1));
    lua_pop(L, 1);
    return 1;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_pushinteger(L, e->nextid++);
  lua_rawset(L, e->refs);
  return 0;
}


static int enc_table (enc *e, int idx) {
  lua_State *L = e->L;
  lua_Unsigned n = lua_rawlen(L, idx), i;
  if (enter(e) != 0) return -1;
  put_byte(e, T_TABLE);
  put_varint(e, n);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, (lua_Integer)i);
    if (enc_value(e, lua_gettop(L)) != 0) {
      char seg[32];
      snprintf(seg, sizeof seg, "[%llu]", (unsigned long long)i);
      prepend(e, seg);
      return -1;
    }
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int k = lua_gettop(L) - 1;
    if (lua_isinteger(L, k)) {
      lua_Integer ik = lua_tointeger(L, k);
      if (ik >= 1 && (lua_Unsigned)ik <= n) { lua_pop(L, 1); continue; }
    }
    if (enc_value(e, k) != 0) {
      prepend(e, "(a key)");
      return -1;
    }
    if (enc_value(e, k + 1) != 0) {
      prepend_key(e, k);
      return -1;
    }
    lua_pop(L, 1);
  }
  put_byte(e, T_END);
  if (!lua_getmetatable(L, idx)) put_byte(e, T_NIL);
  else {
    int mt = lua_gettop(L);
    if (!is_class(e, mt) && enc_value(e, mt) != 0) {
      prepend(e, "(metatable)");
      return -1;
    }
    lua_pop(L, 1);
  }
  e->depth--;
  return 0;
}


static int writer (lua_State *L, const void *p, size_t sz, void *ud) {
  mp_bufadd(L, (mp_buf *)ud, p, sz);
  return 0;
}


static int enc_function (enc *e, int idx) {
  lua_State *L = e->L;
  mp_buf *b = e->b;
  lua_Integer fid = e->nextid - 1;    /* given by seen() */
  size_t at, len;
  uint32_t len32;
  uint64_t h;
  int i, nups = 0;
  if (enter(e) != 0) return -1;
  put_byte(e, T_FUNC);
  at = b->n;
  mp_bufreserve(L, b, 12);
  b->n += 12;
  lua_pushvalue(L, idx);
  lua_dump(L, writer, b, 0);
  lua_pop(L, 1);
  len = b->n - at - 12;
  if (len > 0xffffffffu) { strcpy(e->what, "a function too big"); return -1; }
  len32 = (uint32_t)len;
  h = fnv1a(b->p + at + 12, len);
  memcpy(b->p + at, &len32, 4);
  memcpy(b->p + at + 4, &h, 8);
  while (lua_getupvalue(L, idx, nups + 1) != NULL) { lua_pop(L, 1); nups++; }
  put_byte(e, nups);
  for (i = 1; i <= nups; i++) {
    void *uid = lua_upvalueid(L, idx, i);
    lua_pushlightuserdata(L, uid);
    if (lua_rawget(L, e->upids) == LUA_TNUMBER) {
      lua_Integer j = lua_tointeger(L, -1);
      put_byte(e, T_JOIN);
      put_varint(e, (uint64_t)(j >> 8));
      put_byte(e, (int)(j & 0xff));
      lua_pop(L, 1);
      continue;
    }
    lua_pop(L, 1);
    lua_pushlightuserdata(L, uid);
    lua_pushinteger(L, fid * 256 + i);
    lua_rawset(L, e->upids);
    {
      const char *name = lua_getupvalue(L, idx, i);
      if (enc_value(e, lua_gettop(L)) != 0) {
        char seg[90];
        snprintf(seg, sizeof seg, "(upvalue '%.60s')", name ? name : "?");
        prepend(e, seg);
        return -1;
      }
      lua_pop(L, 1);
    }
  }
  e->depth--;
  return 0;
}


static int enc_value (enc *e, int idx) {
  lua_State *L = e->L;
  int r = 0;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: put_byte(e, T_NIL); return 0;
    case LUA_TBOOLEAN:
      put_byte(e, lua_toboolean(L, idx) ? T_TRUE : T_FALSE);
      return 0;
    case LUA_TNUMBER: {
      char tmp[9];
      if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        tmp[0] = T_INT;
        memcpy(tmp + 1, &i, 8);
      }
      else {
        lua_Number d = lua_tonumber(L, idx);
        tmp[0] = T_FLT;
        memcpy(tmp + 1, &d, 8);
      }
      mp_bufadd(L, e->b, tmp, 9);
      return 0;
    }
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      put_byte(e, T_STR);
      put_lstr(e, s, len);
      return 0;
    }
    default: break;
  }
  luaL_checkstack(L, 8, "serializing");
  switch (lua_type(L, idx)) {
    case LUA_TTABLE:
      lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
      /* what travels by name gets no id: the receiver numbers only the
      ** tables and functions it builds */
      if (lua_rawequal(L, -1, idx)) put_byte(e, T_GLOBALS);
      else if (is_class(e, idx) || by_name(e, idx)) {}
      else if (seen(e, idx)) {}
      else if (enc_subclass(e, idx, &r)) {}
      else r = enc_table(e, idx);
      lua_pop(L, 1);
      break;
    case LUA_TFUNCTION:
      if (lua_iscfunction(L, idx)) {
        if (!by_name(e, idx)) r = cannot(e, idx);
      }
      else if (by_name(e, idx)) {}
      else if (seen(e, idx)) {}
      else r = enc_function(e, idx);
      break;
    case LUA_TUSERDATA: {
      int top = lua_gettop(L);
      if (by_name(e, idx)) break;
      if (luaL_getmetafield(L, idx, "__mp_reduce") == LUA_TFUNCTION) {
        lua_pushvalue(L, idx);
        lua_call(L, 1, 2);          /* function, state at top+1, top+2 */
        if (enter(e) != 0) { r = -1; break; }
        put_byte(e, T_REDUCE);
        if (enc_value(e, top + 1) != 0 || enc_value(e, top + 2) != 0) {
          prepend(e, "(reduced)");
          r = -1;
          break;
        }
        e->depth--;
      }
      else r = cannot(e, idx);
      lua_settop(L, top);
      break;
    }
    default:
      r = cannot(e, idx);
      break;
  }
  return r;
}


void mp_encode (lua_State *L, int idx, mp_buf *b) {
  enc e;
  int top;
  idx = lua_absindex(L, idx);
  memset(&e, 0, sizeof e);
  e.L = L;
  e.b = b;
  e.nextid = 1;
  lua_newtable(L);
  e.refs = lua_gettop(L);
  lua_newtable(L);
  e.upids = lua_gettop(L);
  lua_getfield(L, LUA_REGISTRYINDEX, GILUA_CLASSES_KEY);
  if (!lua_istable(L, -1)) { lua_pop(L, 1); lua_newtable(L); }
  e.classes = lua_gettop(L);
  push_allclasses(L);
  e.allclasses = lua_gettop(L);
  lua_pushnil(L);
  e.names = lua_gettop(L);
  top = lua_gettop(L);
  put_byte(&e, MAGIC);
  put_byte(&e, VERSION);
  lua_pushvalue(L, idx);
  if (enc_value(&e, top + 1) != 0) {
    gilua_raise(L, "TypeError", "cannot send %s%s%s between processes",
                e.what, e.path[0] ? " at value" : "", e.path);
  }
  lua_settop(L, top - 5);
}

/* }================================================================== */


/*
** {==================================================================
** Decoding
** ===================================================================
*/

typedef struct dec {
  lua_State *L;
  const unsigned char *p, *end;
  int objs;                /* table: id -> object */
  int allclasses;          /* every class (a set) */
  lua_Integer nobjs;
  int depth;
} dec;


static void bad (dec *d, const char *why) __attribute__((noreturn));
static void bad (dec *d, const char *why) {
  gilua_raise(d->L, "ValueError", "malformed message: %s", why);
  abort();  /* not reached */
}


static int get_byte (dec *d) {
  if (d->p >= d->end) bad(d, "truncated");
  return *d->p++;
}


static uint64_t get_varint (dec *d) {
  uint64_t v = 0;
  int shift = 0, c;
  do {
    if (shift > 63) bad(d, "bad length");
    c = get_byte(d);
    v |= (uint64_t)(c & 0x7f) << shift;
    shift += 7;
  } while (c & 0x80);
  return v;
}


static const char *get_raw (dec *d, size_t n) {
  const char *s = (const char *)d->p;
  if ((size_t)(d->end - d->p) < n) bad(d, "truncated");
  d->p += n;
  return s;
}


static void push_lstr (dec *d) {
  uint64_t n = get_varint(d);
  const char *s;
  if (n > (uint64_t)(d->end - d->p)) bad(d, "truncated string");
  s = get_raw(d, (size_t)n);
  lua_pushlstring(d->L, s, (size_t)n);
}


static void remember (dec *d, int idx) {
  lua_pushvalue(d->L, idx);
  lua_rawseti(d->L, d->objs, ++d->nobjs);
}


static void dec_value (dec *d);


/* Into a value that holds others: the encoder's rule (enter). */
static void dec_enter (dec *d) {
  if (d->depth >= MAXDEPTH) bad(d, "nested too deeply");
  d->depth++;
}


static void dec_table (dec *d) {
  lua_State *L = d->L;
  uint64_t n = get_varint(d), i;
  int t;
  dec_enter(d);
  if (n > (uint64_t)(d->end - d->p)) bad(d, "bad array size");
  lua_createtable(L, (int)n, 0);
  t = lua_gettop(L);
  remember(d, t);
  for (i = 1; i <= n; i++) {
    dec_value(d);
    lua_rawseti(L, t, (lua_Integer)i);
  }
  for (;;) {
    if (d->p >= d->end) bad(d, "truncated table");
    if (*d->p == T_END) { d->p++; break; }
    dec_value(d);
    if (lua_isnil(L, -1)) bad(d, "nil key");
    if (lua_type(L, -1) == LUA_TNUMBER && isnan(lua_tonumber(L, -1)))
      bad(d, "NaN key");
    dec_value(d);
    lua_rawset(L, t);
  }
  dec_value(d);  /* the metatable */
  if (lua_istable(L, -1)) lua_setmetatable(L, t);
  else if (lua_isnil(L, -1)) lua_pop(L, 1);
  else bad(d, "bad metatable");
  d->depth--;
}


static void dec_function (dec *d) {
  lua_State *L = d->L;
  uint32_t len;
  uint64_t h;
  const char *chunk;
  int f, i, nups = 0, want;
  dec_enter(d);
  memcpy(&len, get_raw(d, 4), 4);
  memcpy(&h, get_raw(d, 8), 8);
  chunk = get_raw(d, len);
  if (fnv1a(chunk, len) != h) bad(d, "function check failed");
  if (luaL_loadbufferx(L, chunk, len, "=?", "b") != LUA_OK)
    bad(d, "bad function");
  f = lua_gettop(L);
  remember(d, f);
  while (lua_getupvalue(L, f, nups + 1) != NULL) { lua_pop(L, 1); nups++; }
  want = get_byte(d);
  if (want != nups) bad(d, "upvalue count");
  for (i = 1; i <= nups; i++) {
    if (d->p < d->end && *d->p == T_JOIN) {
      uint64_t id;
      int j;
      d->p++;
      id = get_varint(d);
      j = get_byte(d);
      if (id < 1 || id > (uint64_t)d->nobjs) bad(d, "bad reference");
      lua_rawgeti(L, d->objs, (lua_Integer)id);
      if (lua_type(L, -1) != LUA_TFUNCTION || lua_iscfunction(L, -1)
          || j < 1 || lua_getupvalue(L, -1, j) == NULL)
        bad(d, "bad shared upvalue");
      lua_pop(L, 1);
      lua_upvaluejoin(L, f, i, lua_gettop(L), j);
      lua_pop(L, 1);
    }
    else {
      dec_value(d);
      lua_setupvalue(L, f, i);
    }
  }
  d->depth--;
}


static void dec_subclass (dec *d) {
  lua_State *L = d->L;
  lua_Integer id = ++d->nobjs;    /* the class's id comes before its parent's */
  int cls;
  dec_enter(d);
  lua_pushboolean(L, 0);
  lua_rawseti(L, d->objs, id);
  dec_value(d);
  if (!isclass(L, d->allclasses, lua_gettop(L))) bad(d, "parent is not a class");
  if (lua_getfield(L, -1, "extend") != LUA_TFUNCTION) bad(d, "parent is not a class");
  lua_insert(L, -2);
  lua_call(L, 1, 1);
  if (!lua_istable(L, -1)) bad(d, "extend() did not make a class");
  cls = lua_gettop(L);
  lua_pushvalue(L, cls);
  lua_rawseti(L, d->objs, id);
  for (;;) {
    if (d->p >= d->end) bad(d, "truncated class");
    if (*d->p == T_END) { d->p++; break; }
    dec_value(d);
    if (lua_isnil(L, -1)) bad(d, "nil key");
    dec_value(d);
    lua_rawset(L, cls);
  }
  d->depth--;
}


static void dec_name (dec *d) {
  lua_State *L = d->L;
  int mod;
  push_lstr(d);
  mod = lua_gettop(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, mod);
  if (lua_rawget(L, -2) == LUA_TNIL) {   /* not loaded here yet */
    lua_pop(L, 1);
    lua_getglobal(L, "require");
    lua_pushvalue(L, mod);
    lua_call(L, 1, 1);
  }
  dec_value(d);  /* key or nil */
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING || !lua_istable(L, -2))
      bad(d, "bad name");
    lua_gettable(L, -2);
  }
  else lua_pop(L, 1);
  lua_replace(L, mod);
  lua_settop(L, mod);
}


static void dec_value (dec *d) {
  lua_State *L = d->L;
  int tag = get_byte(d);
  luaL_checkstack(L, 8, "deserializing");
  switch (tag) {
    case T_NIL: lua_pushnil(L); break;
    case T_FALSE: lua_pushboolean(L, 0); break;
    case T_TRUE: lua_pushboolean(L, 1); break;
    case T_INT: {
      lua_Integer i;
      memcpy(&i, get_raw(d, 8), 8);
      lua_pushinteger(L, i);
      break;
    }
    case T_FLT: {
      lua_Number x;
      memcpy(&x, get_raw(d, 8), 8);
      lua_pushnumber(L, x);
      break;
    }
    case T_STR: push_lstr(d); break;
    case T_TABLE: dec_table(d); break;
    case T_REF: {
      uint64_t id = get_varint(d);
      if (id < 1 || id > (uint64_t)d->nobjs) bad(d, "bad reference");
      lua_rawgeti(L, d->objs, (lua_Integer)id);
      break;
    }
    case T_FUNC: dec_function(d); break;
    case T_GLOBALS: lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS); break;
    case T_CLASS:
      push_lstr(d);
      lua_getfield(L, LUA_REGISTRYINDEX, GILUA_CLASSES_KEY);
      lua_pushvalue(L, -2);
      if (lua_istable(L, -2) && lua_rawget(L, -2) != LUA_TTABLE
          && gilua_runtime(L)) {  /* an interpreter that had not needed it */
        lua_pop(L, 1);
        lua_pushvalue(L, -2);
        lua_rawget(L, -2);
      }
      if (!lua_istable(L, -2) || !lua_istable(L, -1)) {
        gilua_raise(L, "ValueError", "malformed message: unknown class '%s'",
                    lua_tostring(L, -3));
      }
      lua_replace(L, -3);
      lua_pop(L, 1);
      break;
    case T_NAME: dec_name(d); break;
    case T_SUBCLASS: dec_subclass(d); break;
    case T_REDUCE:
      dec_enter(d);
      dec_value(d);
      if (lua_type(L, -1) != LUA_TFUNCTION) bad(d, "bad rebuild function");
      dec_value(d);
      lua_call(L, 1, 1);
      d->depth--;
      break;
    default: bad(d, "unknown tag");
  }
}


void mp_decode (lua_State *L, const char *s, size_t len) {
  dec d;
  int top = lua_gettop(L);
  d.L = L;
  d.depth = 0;
  d.nobjs = 0;
  if (len == 0) bad(&d, "empty message");
  d.p = (const unsigned char *)s;
  d.end = d.p + len;
  if (len < 2 || d.p[0] != MAGIC) bad(&d, "not a serialized value");
  if (d.p[1] != VERSION) bad(&d, "unknown version");
  d.p += 2;
  lua_newtable(L);
  d.objs = top + 1;
  push_allclasses(L);
  d.allclasses = top + 2;
  dec_value(&d);
  if (d.p != d.end) bad(&d, "trailing bytes");
  lua_remove(L, top + 1);
  lua_remove(L, top + 1);
}

/* }================================================================== */


static int l_dumps (lua_State *L) {
  mp_buf *b;
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  b = mp_newbuf(L);
  mp_encode(L, 1, b);
  lua_pushlstring(L, b->p, b->n);
  return 1;
}


static int l_loads (lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_settop(L, 1);
  mp_decode(L, s, len);
  return 1;
}


int mp_open_serialize (lua_State *L) {
  lua_pushcfunction(L, l_dumps);
  lua_setfield(L, -2, "dumps");
  lua_pushcfunction(L, l_loads);
  lua_setfield(L, -2, "loads");
  return 0;
}
