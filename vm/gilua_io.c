/*
** gilua_io.c: Lua's io library, waiting without the GIL.
**
** liolib reads and writes holding whatever lock its caller holds, so one
** thread blocked in io.read() would stop every other thread. The file
** methods and io functions that can wait on a terminal, a pipe or a child
** process are replaced here by ones with the behaviour of Lua 5.4's
** documented io library, which do their stdio calls with the GIL released
** (gilua_iostream.c, under the rules written in gilua_io.h).
**
** This file has the functions and their installation.
*/
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <lualib.h>

#include "gilua_io.h"


/* Most formats one lines iterator keeps, as liolib. */
#define MAXARGLINE	250

/* Arguments of one write passed to stdio per GIL release. */
#define MAXSEG		16

#define NUMLEN		64

struct Seg {
  const char *s;
  size_t len;
};


/*
** liolib's own functions, found in the io table and the file methods when
** gilua_openio runs. They have no upvalues (checked), so a pointer is
** enough to call them again. They are the same in every interpreter: the
** first one's opening sets them, under 'learn_lock', and the next ones
** only check them (threads of other interpreters read them meanwhile).
*/
static lua_CFunction orig_input, orig_output, orig_open, orig_popen;
static lua_CFunction orig_close, orig_seek, orig_setvbuf, orig_gc;
static pthread_mutex_t learn_lock = PTHREAD_MUTEX_INITIALIZER;
static int learned;

/*
** liolib's 'closef' for each kind of stream. Standard streams are seen at
** start; for files and pipes, the first io.open and io.popen tell (in any
** interpreter: hence atomic). A stream whose closef is none of these is
** closed by liolib itself, with the GIL.
*/
static lua_CFunction closef_std, closef_file, closef_pipe;
#define getclosef(slot)  __atomic_load_n(&(slot), __ATOMIC_RELAXED)


static LStream *checkopen (lua_State *L, int idx) {
  LStream *p = (LStream *)luaL_checkudata(L, idx, LUA_FILEHANDLE);
  if (isclosed(p))
    luaL_error(L, "attempt to use a closed file");
  return p;
}



/*
** {======================================================
** READ
** =======================================================
*/

/* The current default file, through liolib's io.input/io.output. */
static int pushdefault (lua_State *L, lua_CFunction get) {
  lua_pushcfunction(L, get);
  lua_call(L, 0, 1);
  return lua_gettop(L);
}


static int getiofile (lua_State *L, lua_CFunction get, const char *what) {
  int idx = pushdefault(L, get);
  LStream *p = (LStream *)luaL_testudata(L, idx, LUA_FILEHANDLE);
  if (p == NULL || isclosed(p))
    luaL_error(L, "default %s file is closed", what);
  return idx;
}


static int io_read (lua_State *L) {
  return gio_read(L, getiofile(L, orig_input, "input"), 1);
}


static int f_read (lua_State *L) {
  checkopen(L, 1);
  return gio_read(L, 1, 2);
}


/* Python's file.readline(): the line with its newline; nil (Python: "")
** at the end, so that `if not line then break end` reads naturally. */
static int f_readline (lua_State *L) {
  checkopen(L, 1);
  lua_settop(L, 1);
  lua_pushliteral(L, "L");
  return gio_read(L, 1, 2);
}

/* }====================================================== */



/*
** {======================================================
** CLOSE, and liolib's functions that lock the FILE
** =======================================================
*/

/* Holding the GIL, waits until no thread uses the file at 'idx'. */
static void waitidle (lua_State *L, int idx) {
  FILE *f;
  while (gio_isbusy(f = checkopen(L, idx)->f)) {
    gilua_release(L);
    gio_busywait(f);
    gilua_acquire(L);
    gilua_checkinterrupt(L);
  }
}


/*
** Closes the open file at 'idx' and pushes liolib's results. Closing
** waits until no other thread uses the file (as CPython's close waits for
** a read in progress); if one closed it meanwhile, it raises, or pushes
** nothing when 'quiet'.
*/
static int closefile (lua_State *L, int idx, int quiet) {
  LStream *p = (LStream *)lua_touserdata(L, idx);
  int top = lua_gettop(L);
  lua_CFunction cf;
  for (;;) {
    FILE *f;
    if (isclosed(p)) {
      if (quiet) return 0;
      return luaL_error(L, "attempt to use a closed file");
    }
    if (p->closef == closef_std || !gio_isbusy(f = p->f)) break;
    gilua_release(L);
    gio_busywait(f);
    gilua_acquire(L);
    gilua_checkinterrupt(L);
  }
  cf = p->closef;
  if (cf != NULL
      && (cf == getclosef(closef_file) || cf == getclosef(closef_pipe))) {
    FILE *f = p->f;
    int res, en;
    p->closef = NULL;  /* closed for all from now on */
    gilua_release(L);
    errno = 0;
    res = (cf == getclosef(closef_pipe)) ? pclose(f) : fclose(f);
    en = errno;
    gilua_acquire(L);
    errno = en;
    return (cf == getclosef(closef_pipe)) ? luaL_execresult(L, res)
                               : luaL_fileresult(L, res == 0, NULL);
  }
  lua_pushcfunction(L, orig_close);  /* a standard file, or a stranger */
  lua_pushvalue(L, idx);
  lua_call(L, 1, LUA_MULTRET);
  return lua_gettop(L) - top;
}


static int f_close (lua_State *L) {
  checkopen(L, 1);
  return closefile(L, 1, 0);
}


static int io_close (lua_State *L) {
  if (lua_isnone(L, 1))
    pushdefault(L, orig_output);
  checkopen(L, 1);
  return closefile(L, 1, 0);
}


/* A to-be-closed file: like liolib's __close, but pclose waits unlocked. */
static int f_tbc (lua_State *L) {
  LStream *p = (LStream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
  if (!isclosed(p)) {
    lua_settop(L, 1);
    closefile(L, 1, 1);
  }
  return 0;
}


/*
** A file that a thread uses is on that thread's stack, so it is collected
** only when Lua closes, with the thread blocked for good (a daemon thread
** at exit). fclose would wait for its FILE lock forever: leave it to exit.
*/
static int f_gc (lua_State *L) {
  LStream *p = (LStream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
  if (!isclosed(p) && gio_isbusy(p->f)) return 0;
  return orig_gc(L);
}


/* fseek and setvbuf lock the FILE: only when no thread uses it. */
static int f_seek (lua_State *L) {
  waitidle(L, 1);
  return orig_seek(L);
}


static int f_setvbuf (lua_State *L) {
  waitidle(L, 1);
  return orig_setvbuf(L);
}


/* The first file and pipe that liolib opens show its closef for them. */
static void learn (lua_State *L, int nres, lua_CFunction *slot) {
  LStream *p;
  if (__atomic_load_n(slot, __ATOMIC_RELAXED) == NULL && nres == 1
      && (p = (LStream *)luaL_testudata(L, -1, LUA_FILEHANDLE)) != NULL
      && !isclosed(p) && p->closef != closef_std)
    __atomic_store_n(slot, p->closef, __ATOMIC_RELAXED);
}


static int io_open (lua_State *L) {
  int n = orig_open(L);
  learn(L, n, &closef_file);
  return n;
}


static int io_popen (lua_State *L) {
  int n = orig_popen(L);
  learn(L, n, &closef_pipe);
  return n;
}

/* }====================================================== */



/*
** {======================================================
** LINES
** =======================================================
*/

/* Upvalues: the file, the number of formats, close at the end, formats. */
static int io_readline (lua_State *L) {
  LStream *p = (LStream *)lua_touserdata(L, lua_upvalueindex(1));
  int i, n = (int)lua_tointeger(L, lua_upvalueindex(2));
  if (isclosed(p))
    return luaL_error(L, "file is already closed");
  lua_settop(L, 1);
  luaL_checkstack(L, n, "too many arguments");
  for (i = 1; i <= n; i++)
    lua_pushvalue(L, lua_upvalueindex(3 + i));
  n = gio_read(L, lua_upvalueindex(1), 2);
  if (lua_toboolean(L, -n))
    return n;
  if (n > 1)  /* nil, message, errno: an error, not the end */
    return luaL_error(L, "%s", lua_tostring(L, -n + 1));
  if (lua_toboolean(L, lua_upvalueindex(3))) {
    lua_settop(L, 0);
    lua_pushvalue(L, lua_upvalueindex(1));
    closefile(L, 1, 1);
  }
  return 0;
}


/* The file is at 1, the formats after it. */
static void pushlines (lua_State *L, int toclose) {
  int n = lua_gettop(L) - 1;
  luaL_argcheck(L, n <= MAXARGLINE, MAXARGLINE + 2, "too many arguments");
  lua_pushvalue(L, 1);
  lua_pushinteger(L, n);
  lua_pushboolean(L, toclose);
  lua_rotate(L, 2, 3);
  lua_pushcclosure(L, io_readline, 3 + n);
}


static int f_lines (lua_State *L) {
  checkopen(L, 1);
  pushlines(L, 0);
  return 1;
}


static void openforlines (lua_State *L, const char *fname) {
  lua_pushcfunction(L, orig_open);
  lua_pushstring(L, fname);
  lua_pushliteral(L, "r");
  lua_call(L, 2, 3);
  if (lua_isnil(L, -3))
    luaL_error(L, "cannot open file '%s' (%s)", fname,
               strerror((int)lua_tointeger(L, -1)));
  lua_pop(L, 2);
  learn(L, 1, &closef_file);
}


static int io_lines (lua_State *L) {
  int toclose;
  if (lua_isnone(L, 1)) lua_pushnil(L);
  if (lua_isnil(L, 1)) {
    pushdefault(L, orig_input);
    lua_replace(L, 1);
    checkopen(L, 1);
    toclose = 0;
  }
  else {
    openforlines(L, luaL_checkstring(L, 1));
    lua_replace(L, 1);
    toclose = 1;
  }
  pushlines(L, toclose);
  if (!toclose) return 1;
  lua_pushnil(L);
  lua_pushnil(L);
  lua_pushvalue(L, 1);  /* to-be-closed, for a loop left by break */
  return 4;
}

/* }====================================================== */



/*
** {======================================================
** WRITE and FLUSH
** =======================================================
*/

static int write_fast (Op *op, FILE *f) {
  int i;
  if (op->total >= gio_writable(f)) return 0;
  for (i = 0; i < op->nseg; i++)
    fwrite_unlocked(op->seg[i].s, 1, op->seg[i].len, f);
  return 1;
}


static void write_slow (Op *op, FILE *f) {
  int i;
  for (i = 0; i < op->nseg; i++) {
    const char *s = op->seg[i].s;
    size_t left = op->seg[i].len;
    while (left > 0) {
      size_t k = fwrite_unlocked(s, 1, left, f);
      s += k;
      left -= k;
      if (left > 0 && !gio_again(op, f)) {
        if (op->err == 0) op->err = EIO;
        return;
      }
    }
  }
}


/* A number is written as liolib does, which differs from tostring. */
static size_t fmtnumber (lua_State *L, int i, char *out) {
  int len = lua_isinteger(L, i)
    ? snprintf(out, NUMLEN, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, i))
    : snprintf(out, NUMLEN, LUA_NUMBER_FMT, (LUAI_UACNUMBER)lua_tonumber(L, i));
  return (len < 0) ? 0 : (len >= NUMLEN) ? NUMLEN - 1 : (size_t)len;
}


/*
** Writes the values at first .. last to the file at 'idx'. The strings are
** on the stack, so they stay valid with the GIL released. As liolib, the
** values before a bad argument are written before it raises, and after
** an error nothing more is written.
*/
static int g_write (lua_State *L, int idx, int first, int last) {
  Seg seg[MAXSEG];
  char num[MAXSEG][NUMLEN];
  Op op;
  int i = first;
  gio_opinit(&op);
  op.fast = write_fast;
  op.slow = write_slow;
  op.seg = seg;
  while (i <= last) {
    int bad = 0;
    op.nseg = 0;
    op.total = 0;
    for (; i <= last && op.nseg < MAXSEG; i++) {
      Seg *sg = &seg[op.nseg];
      if (lua_type(L, i) == LUA_TNUMBER) {
        sg->len = fmtnumber(L, i, num[op.nseg]);
        sg->s = num[op.nseg];
      }
      else if ((sg->s = lua_tolstring(L, i, &sg->len)) == NULL) {
        bad = 1;
        break;
      }
      op.total += sg->len;
      op.nseg++;
    }
    if (op.nseg > 0 && op.err == 0) {
      gio_run(L, idx, &op);
      gio_settle(L, &op);
    }
    if (bad) luaL_checklstring(L, i, NULL);  /* raises */
  }
  if (op.err != 0)
    return gio_fileerror(L, op.err);
  lua_pushvalue(L, idx);
  return 1;
}


static int io_write (lua_State *L) {
  int last = lua_gettop(L);
  return g_write(L, getiofile(L, orig_output, "output"), 1, last);
}


static int f_write (lua_State *L) {
  checkopen(L, 1);
  return g_write(L, 1, 2, lua_gettop(L));
}


static int flush_fast (Op *op, FILE *f) {
  (void)op;
  return gio_flushed(f);
}


static void flush_slow (Op *op, FILE *f) {
  int en;
  do {
    if (fflush_unlocked(f) == 0) return;
    en = errno;
  } while (gio_again(op, f));
  if (op->err == 0) op->err = en ? en : EIO;
}


static int g_flush (lua_State *L, int idx) {
  Op op;
  gio_opinit(&op);
  op.fast = flush_fast;
  op.slow = flush_slow;
  gio_run(L, idx, &op);
  gio_settle(L, &op);
  if (op.err != 0)
    return gio_fileerror(L, op.err);
  return luaL_fileresult(L, 1, NULL);
}


static int io_flush (lua_State *L) {
  return g_flush(L, getiofile(L, orig_output, "output"));
}


static int f_flush (lua_State *L) {
  checkopen(L, 1);
  return g_flush(L, 1);
}

/* }====================================================== */



/*
** {======================================================
** Installation
** =======================================================
*/

/* liolib's function t[name], if it is a C function without upvalues. */
static lua_CFunction original (lua_State *L, int t, const char *name) {
  lua_CFunction f = NULL;
  int top = lua_gettop(L);
  if (lua_getfield(L, t, name) == LUA_TFUNCTION && lua_iscfunction(L, -1)
      && lua_getupvalue(L, -1, 1) == NULL)
    f = lua_tocfunction(L, -1);
  lua_settop(L, top);
  return f;
}


static void replace (lua_State *L, int t, const char *name, lua_CFunction f) {
  lua_pushcfunction(L, f);
  lua_setfield(L, t, name);
}


static const luaL_Reg iofuncs[] = {
  {"read", io_read},
  {"write", io_write},
  {"lines", io_lines},
  {"flush", io_flush},
  {"close", io_close},
  {"open", io_open},
  {"popen", io_popen},
  {NULL, NULL}
};


static const luaL_Reg methods[] = {
  {"read", f_read},
  {"readline", f_readline},
  {"write", f_write},
  {"lines", f_lines},
  {"flush", f_flush},
  {"close", f_close},
  {"seek", f_seek},
  {"setvbuf", f_setvbuf},
  {NULL, NULL}
};


static lua_CFunction learnstd (lua_State *L, int io) {
  LStream *p;
  lua_CFunction f;
  lua_getfield(L, io, "stdin");
  p = (LStream *)luaL_testudata(L, -1, LUA_FILEHANDLE);
  f = (p != NULL) ? p->closef : NULL;
  lua_pop(L, 1);
  return f;
}


/* Sets the originals (the first time) or checks that L's are the same. */
static int originals (lua_State *L, int io, int m, int mt) {
  lua_CFunction f[9];
  lua_CFunction *slot[9] = {&orig_input, &orig_output, &orig_open,
    &orig_popen, &orig_close, &orig_seek, &orig_setvbuf, &orig_gc,
    &closef_std};
  int i, ok = 1;
  f[0] = original(L, io, "input");
  f[1] = original(L, io, "output");
  f[2] = original(L, io, "open");
  f[3] = original(L, io, "popen");
  f[4] = original(L, m, "close");
  f[5] = original(L, m, "seek");
  f[6] = original(L, m, "setvbuf");
  f[7] = original(L, mt, "__gc");
  f[8] = learnstd(L, io);
  for (i = 0; i < 9; i++) ok = ok && f[i] != NULL;
  pthread_mutex_lock(&learn_lock);
  if (ok && !learned) {
    for (i = 0; i < 9; i++) *slot[i] = f[i];
    learned = 1;
  }
  else
    for (i = 0; ok && i < 9; i++) ok = (*slot[i] == f[i]);
  pthread_mutex_unlock(&learn_lock);
  return ok;
}


/*
** Replaces everything or nothing: the new functions call liolib's
** originals, so all of them must be the ones expected.
*/
void gilua_openio (lua_State *L) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  int top = lua_gettop(L), io, mt, m;
  const luaL_Reg *r;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, LUA_IOLIBNAME);
  io = lua_gettop(L);
  luaL_getmetatable(L, LUA_FILEHANDLE);
  mt = lua_gettop(L);
  if (!lua_istable(L, io) || !lua_istable(L, mt)
      || lua_getfield(L, mt, "__index") != LUA_TTABLE)
    goto done;
  m = lua_gettop(L);
  if (!originals(L, io, m, mt)) goto done;
  pthread_once(&once, gio_businit);
  for (r = iofuncs; r->name != NULL; r++) replace(L, io, r->name, r->func);
  for (r = methods; r->name != NULL; r++) replace(L, m, r->name, r->func);
  replace(L, mt, "__close", f_tbc);
  replace(L, mt, "__gc", f_gc);
 done:
  lua_settop(L, top);
}

/* }====================================================== */
