/*
** gilua_io.c: Lua's io library, waiting without the GIL.
**
** liolib reads and writes holding whatever lock its caller holds, so one
** thread blocked in io.read() would stop every other thread. The file
** methods and io functions that can wait on a terminal, a pipe or a child
** process are replaced here by ones with the behaviour of Lua 5.4's
** documented io library, which do their stdio calls with the GIL released.
**
** Three rules keep that safe:
** - no Lua API call without the GIL: what is written stays anchored on the
**   stack, what is read is gathered in C memory and pushed afterwards;
** - holding the GIL, never wait for a FILE lock (its holder may be waiting
**   for input, then for the GIL): only ftrylockfile, and the FILE lock is
**   let go before taking the GIL back;
** - a FILE in use without the GIL is on the busy list, and whatever would
**   close it or lock it holding the GIL waits until it is off the list.
*/
#include <ctype.h>
#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GLIBC__)
#include <stdio_ext.h>
#else
#define getc_unlocked(f)	getc(f)
#define fread_unlocked		fread
#define fwrite_unlocked		fwrite
#define fflush_unlocked		fflush
#define ferror_unlocked		ferror
#define clearerr_unlocked	clearerr
#endif

/*
** ThreadSanitizer does not see the FILE locks, which live inside glibc, so
** the inline getc_unlocked, touching the FILE from this file, would look
** like a race. The function does the same (its lock is recursive).
*/
#if defined(__SANITIZE_THREAD__)
#define GILUA_TSAN
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GILUA_TSAN
#endif
#endif

#if defined(GILUA_TSAN)
#undef getc_unlocked
#define getc_unlocked(f)	fgetc(f)
#endif

#include <lualib.h>

#include "gilua_vm.h"


typedef luaL_Stream LStream;

#define isclosed(p)	((p)->closef == NULL)

/* Lines that fit here are read without malloc. */
#define BUFINIT		((size_t)LUAL_BUFFERSIZE)

/* Longest numeral "n" reads, as liolib. */
#define MAXNUMERAL	200

/* Most formats one lines iterator keeps, as liolib. */
#define MAXARGLINE	250

/* Arguments of one write passed to stdio per GIL release. */
#define MAXSEG		16

#define NUMLEN		64


/*
** liolib's own functions, found in the io table and the file methods when
** gilua_openio runs. They have no upvalues (checked), so a pointer is
** enough to call them again.
*/
static lua_CFunction orig_input, orig_output, orig_open, orig_popen;
static lua_CFunction orig_close, orig_seek, orig_setvbuf, orig_gc;

/*
** liolib's 'closef' for each kind of stream. Standard streams are seen at
** start; for files and pipes, the first io.open and io.popen tell. A stream
** whose closef is none of these is closed by liolib itself, with the GIL.
*/
static lua_CFunction closef_std, closef_file, closef_pipe;



/*
** {======================================================
** Busy list: FILEs used by threads that released the GIL
** =======================================================
*/

typedef struct Busy {
  FILE *f;
  struct Busy *next;
} Busy;

static pthread_mutex_t busy_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t busy_cond;        /* gilua_cond_init, in busy_init */
static Busy *busy_list;
static int busy_waiters;


/* Caller holds the GIL, so nobody can close 'f' before it is listed. */
static void busy_enter (Busy *b, FILE *f) {
  b->f = f;
  pthread_mutex_lock(&busy_mtx);
  b->next = busy_list;
  busy_list = b;
  pthread_mutex_unlock(&busy_mtx);
}


static void busy_leave (Busy *b) {
  Busy **q;
  pthread_mutex_lock(&busy_mtx);
  for (q = &busy_list; *q != b; q = &(*q)->next) ;
  *q = b->next;
  if (busy_waiters > 0)
    pthread_cond_broadcast(&busy_cond);
  pthread_mutex_unlock(&busy_mtx);
}


static int busy_has (FILE *f) {
  Busy *b;
  for (b = busy_list; b != NULL; b = b->next)
    if (b->f == f) return 1;
  return 0;
}


static int isbusy (FILE *f) {
  int r;
  pthread_mutex_lock(&busy_mtx);
  r = busy_has(f);
  pthread_mutex_unlock(&busy_mtx);
  return r;
}


/* 'f' is only compared, never used: it may be closed when this returns.
** Through gilua_condwait, so that Ctrl-C ends the main thread's wait:
** the caller checks for it once it has the GIL back. */
static void busy_wait (FILE *f) {
  int rc = 0;
  pthread_mutex_lock(&busy_mtx);
  busy_waiters++;
  while (rc != EINTR && busy_has(f))
    rc = gilua_condwait(&busy_cond, &busy_mtx, NULL);
  busy_waiters--;
  pthread_mutex_unlock(&busy_mtx);
}


static void busy_prefork (void) { pthread_mutex_lock(&busy_mtx); }

static void busy_postfork (void) { pthread_mutex_unlock(&busy_mtx); }

/* The listed threads do not exist in the child. */
static void busy_child (void) {
  busy_list = NULL;
  busy_waiters = 0;
  gilua_cond_init(&busy_cond);
  pthread_mutex_unlock(&busy_mtx);
}


static void busy_init (void) {
  gilua_cond_init(&busy_cond);
  pthread_atfork(busy_prefork, busy_postfork, busy_child);
}

/* }====================================================== */



/*
** {======================================================
** What stdio can do without a system call
** =======================================================
*/

#if defined(__GLIBC__)

/*
** glibc's FILE is public. [_IO_read_ptr, _IO_read_end) holds what the next
** reads return without a system call, and a write shorter than
** _IO_write_end - _IO_write_ptr is only copied (that room is zero for line
** buffered and unbuffered streams). Serving such calls holding the GIL
** avoids handing the GIL to a CPU-bound thread at every line, then waiting
** a switch interval to get it back (CPython's buffered files do the same).
*/
static size_t readable (FILE *f, const char **p) {
  *p = f->_IO_read_ptr;
  return (f->_IO_read_ptr < f->_IO_read_end)
         ? (size_t)(f->_IO_read_end - f->_IO_read_ptr) : 0;
}


static size_t writable (FILE *f) {
  return (f->_IO_write_ptr < f->_IO_write_end)
         ? (size_t)(f->_IO_write_end - f->_IO_write_ptr) : 0;
}


/* A write-only stream with nothing pending: fflush would do nothing. */
static int flushed (FILE *f) {
  return __fwriting(f) && !__freadable(f) && __fpending(f) == 0;
}

#else

static size_t readable (FILE *f, const char **p) {
  (void)f; *p = NULL;
  return 0;
}

static size_t writable (FILE *f) { (void)f; return 0; }

static int flushed (FILE *f) { (void)f; return 0; }

#endif

/* }====================================================== */



/*
** {======================================================
** Operations on a stream, with or without the GIL
** =======================================================
*/

/* Bytes read without the GIL; malloc'd only past BUFINIT. */
typedef struct Buf {
  char *b;
  size_t n, size;
  char init[BUFINIT];
} Buf;


typedef struct Seg {
  const char *s;
  size_t len;
} Seg;


/* Reading a numeral; 'p' and 'end' when scanning stdio's buffer. */
typedef struct Scan {
  const char *p, *end;
  int peek;          /* scanning the buffer, consuming nothing */
  int blocked;       /* ... and the buffer ended before the numeral */
  int c;             /* look-ahead */
  int n;
  int toolong;
  char point;        /* the locale's, fetched holding the GIL */
  char buff[MAXNUMERAL + 1];
} Scan;


typedef struct Op Op;

struct Op {
  /* Holding the GIL and the FILE lock: finish from stdio's buffers and
  ** return 1, or return 0 having consumed nothing. NULL: never. */
  int (*fast) (Op *op, FILE *f);
  /* Without the GIL, holding the FILE lock. */
  void (*slow) (Op *op, FILE *f);
  int clear;         /* clear the error and EOF flags first */
  int ok;            /* a read succeeded as liolib counts it */
  int err;           /* errno of a failure */
  int intr;          /* stopped for Ctrl-C */
  int nomem;
  int chop;          /* "l" rather than "L" */
  size_t count;      /* bytes asked for */
  Buf *buf;
  Scan *scan;
  Seg *seg;
  int nseg;
  size_t total;
};


static void op_init (Op *op) {
  memset(op, 0, sizeof *op);
}


static void buf_init (Buf *B) {
  B->b = B->init;
  B->n = 0;
  B->size = BUFINIT;
}


static void buf_free (Buf *B) {
  if (B->b != B->init) free(B->b);
  buf_init(B);
}


/* Room for at least one more byte and at most 'want'; 0 if out of memory. */
static int buf_grow (Buf *B, size_t want) {
  size_t size = B->size + (want < B->size ? want : B->size);
  char *nb;
  if (size < B->size) return 0;
  if (B->b == B->init) {
    if ((nb = malloc(size)) != NULL) memcpy(nb, B->b, B->n);
  }
  else nb = realloc(B->b, size);
  if (nb == NULL) return 0;
  B->b = nb;
  B->size = size;
  return 1;
}


/* Room for 'len' bytes in an empty buffer. */
static int buf_reserve (Buf *B, size_t len) {
  char *nb;
  if (len <= B->size) return 1;
  if ((nb = malloc(len)) == NULL) return 0;
  buf_free(B);
  B->b = nb;
  B->size = len;
  return 1;
}


/*
** stdio reports a signal that cut a system call short as an error. Only
** Ctrl-C stops the operation (Python's rule, PEP 475); otherwise the flag
** is cleared and the call made again. Returns 1 to retry; else a real
** error, if any, is recorded.
*/
static int again (Op *op, FILE *f) {
  int en = errno;
  if (!ferror_unlocked(f)) return 0;
  if (en == EINTR) {
    if (!gilua_interrupt_pending()) {
      clearerr_unlocked(f);
      return 1;
    }
    op->intr = 1;
  }
  if (op->err == 0) op->err = en ? en : EIO;
  return 0;
}


static int getch (Op *op, FILE *f) {
  int c;
  while ((c = getc_unlocked(f)) == EOF && again(op, f)) ;
  return c;
}


static LStream *checkopen (lua_State *L, int idx) {
  LStream *p = (LStream *)luaL_checkudata(L, idx, LUA_FILEHANDLE);
  if (isclosed(p))
    luaL_error(L, "attempt to use a closed file");
  return p;
}


/*
** Runs 'op' on the file at 'idx', a file handle the caller has checked.
** Whether it is open is checked each time: another thread may have closed
** it while this one waited.
*/
static void run (lua_State *L, int idx, Op *op) {
  LStream *p = (LStream *)lua_touserdata(L, idx);
  FILE *f;
  Busy b;
  if (isclosed(p))
    luaL_error(L, "attempt to use a closed file");
  f = p->f;
  if (op->fast != NULL && ftrylockfile(f) == 0) {
    int done;
    if (op->clear) clearerr_unlocked(f);
    op->clear = 0;
    done = op->fast(op, f);
    funlockfile(f);
    if (done) return;
  }
  busy_enter(&b, f);
  gilua_release(L);
  flockfile(f);
  if (op->clear) clearerr_unlocked(f);
  op->clear = 0;
  op->slow(op, f);
  funlockfile(f);
  busy_leave(&b);
  gilua_acquire(L);
}


/* After 'run': raise what cannot be returned. */
static void settle (lua_State *L, Op *op) {
  if (op->intr || op->nomem) {
    if (op->buf) buf_free(op->buf);
    if (op->intr) gilua_checkinterrupt(L);  /* raises KeyboardInterrupt */
    if (op->nomem) {
      lua_pushliteral(L, "not enough memory");
      lua_error(L);
    }
  }
}


/* A read's bytes become a Lua string. (If Lua itself is out of memory
** here, the malloc'd block leaks: pushing it is the last chance.) */
static void pushbuf (lua_State *L, Buf *B) {
  lua_pushlstring(L, B->b, B->n);
  buf_free(B);
}


static int fileerror (lua_State *L, int en) {
  errno = en;
  return luaL_fileresult(L, 0, NULL);
}

/* }====================================================== */



/*
** {======================================================
** READ
** =======================================================
*/

static int line_fast (Op *op, FILE *f) {
  const char *p, *nl;
  size_t avail = readable(f, &p), len;
  if (avail == 0 || (nl = memchr(p, '\n', avail)) == NULL) return 0;
  len = (size_t)(nl - p) + 1;
  if (!buf_reserve(op->buf, len)) return 0;
  op->buf->n = fread_unlocked(op->buf->b, 1, len, f) - (size_t)op->chop;
  op->ok = 1;
  return 1;
}


static int addch (Op *op, int c) {
  Buf *B = op->buf;
  if (B->n == B->size && !buf_grow(B, SIZE_MAX)) {
    op->nomem = 1;
    return 0;
  }
  B->b[B->n++] = (char)c;
  return 1;
}


static void line_slow (Op *op, FILE *f) {
  int c;
  while ((c = getch(op, f)) != EOF && c != '\n')
    if (!addch(op, c)) return;
  if (c == '\n' && !op->chop && !addch(op, c)) return;
  op->ok = (c == '\n' || op->buf->n > 0);
}


static int chars_fast (Op *op, FILE *f) {
  const char *p;
  if (readable(f, &p) < op->count || !buf_reserve(op->buf, op->count))
    return 0;
  op->buf->n = fread_unlocked(op->buf->b, 1, op->count, f);
  op->ok = 1;
  return 1;
}


/* Up to 'count' bytes: fread waits for all of them or the end. */
static void chars_slow (Op *op, FILE *f) {
  Buf *B = op->buf;
  size_t left = op->count;
  while (left > 0) {
    size_t room = B->size - B->n, got;
    if (room == 0) {
      if (!buf_grow(B, left)) { op->nomem = 1; return; }
      room = B->size - B->n;
    }
    if (room > left) room = left;
    got = fread_unlocked(B->b + B->n, 1, room, f);
    B->n += got;
    left -= got;
    if (got < room && !again(op, f)) break;
  }
  op->ok = (B->n > 0);
}


static void all_slow (Op *op, FILE *f) {
  Buf *B = op->buf;
  for (;;) {
    size_t room = B->size - B->n, got;
    if (room == 0) {
      if (!buf_grow(B, SIZE_MAX)) { op->nomem = 1; return; }
      room = B->size - B->n;
    }
    got = fread_unlocked(B->b + B->n, 1, room, f);
    B->n += got;
    if (got < room && !again(op, f)) break;
  }
  op->ok = 1;
}


static int eof_fast (Op *op, FILE *f) {
  const char *p;
  return (op->ok = (readable(f, &p) > 0));
}


static void eof_slow (Op *op, FILE *f) {
  int c = getch(op, f);
  if (c != EOF) ungetc(c, f);
  op->ok = (c != EOF);
}


static int scan_getc (Op *op, FILE *f) {
  Scan *s = op->scan;
  if (!s->peek) return getch(op, f);
  if (s->p < s->end) return (unsigned char)*s->p++;
  s->blocked = 1;
  return EOF;
}


/* Keeps the look-ahead and reads the next character. */
static int keep (Op *op, FILE *f) {
  Scan *s = op->scan;
  if (s->n >= MAXNUMERAL) {
    s->toolong = 1;
    return 0;
  }
  s->buff[s->n++] = (char)s->c;
  s->c = scan_getc(op, f);
  return 1;
}


static int accept (Op *op, FILE *f, char a, char b) {
  int c = op->scan->c;
  return (c == a || c == b) && keep(op, f);
}


static int digits (Op *op, FILE *f, int hex) {
  int k = 0;
  while ((hex ? isxdigit(op->scan->c) : isdigit(op->scan->c)) && keep(op, f))
    k++;
  return k;
}


/*
** Takes the longest prefix that may be a numeral, as liolib does; whether
** it is one is lua_stringtonumber's call, made holding the GIL.
*/
static void scan_numeral (Op *op, FILE *f) {
  Scan *s = op->scan;
  int count = 0, hex = 0;
  s->n = 0;
  s->toolong = 0;
  do { s->c = scan_getc(op, f); } while (isspace(s->c));
  accept(op, f, '-', '+');
  if (accept(op, f, '0', '0')) {
    if (accept(op, f, 'x', 'X')) hex = 1;
    else count = 1;
  }
  count += digits(op, f, hex);
  if (accept(op, f, s->point, '.'))
    count += digits(op, f, hex);
  if (count > 0 && (hex ? accept(op, f, 'p', 'P') : accept(op, f, 'e', 'E'))) {
    accept(op, f, '-', '+');
    digits(op, f, 0);
  }
  s->buff[s->toolong ? 0 : s->n] = '\0';
}


static int number_fast (Op *op, FILE *f) {
  Scan *s = op->scan;
  const char *p;
  size_t avail = readable(f, &p), used;
  if (avail == 0) return 0;
  s->peek = 1;
  s->blocked = 0;
  s->p = p;
  s->end = p + avail;
  scan_numeral(op, f);
  if (s->blocked) return 0;
  for (used = (size_t)(s->p - p) - 1; used > 0; used--)
    (void)getc_unlocked(f);  /* all buffered */
  return 1;
}


static void number_slow (Op *op, FILE *f) {
  op->scan->peek = 0;
  scan_numeral(op, f);
  if (op->scan->c != EOF) ungetc(op->scan->c, f);
}


/*
** Each rd_* reads one format from the file at 'idx', pushes one value and
** returns whether it succeeded; op->err tells a read error.
*/
static int rd_string (lua_State *L, int idx, Op *op) {
  op->ok = 0;
  op->buf->n = 0;
  run(L, idx, op);
  settle(L, op);
  pushbuf(L, op->buf);
  return op->ok;
}


static int rd_line (lua_State *L, int idx, Op *op, int chop) {
  op->fast = line_fast;
  op->slow = line_slow;
  op->chop = chop;
  return rd_string(L, idx, op);
}


static int rd_chars (lua_State *L, int idx, Op *op, lua_Integer n) {
  if (n < 0) {  /* a size_t past any memory, to liolib */
    lua_pushliteral(L, "not enough memory");
    return lua_error(L);
  }
  op->count = (size_t)n;
  op->fast = (n == 0) ? eof_fast : chars_fast;
  op->slow = (n == 0) ? eof_slow : chars_slow;
  return rd_string(L, idx, op);
}


static int rd_all (lua_State *L, int idx, Op *op) {
  op->fast = NULL;  /* only a system call tells the end */
  op->slow = all_slow;
  return rd_string(L, idx, op);
}


static int rd_number (lua_State *L, int idx, Op *op) {
  op->fast = number_fast;
  op->slow = number_slow;
  op->scan->point = lua_getlocaledecpoint();
  op->ok = 0;
  run(L, idx, op);
  settle(L, op);
  if (lua_stringtonumber(L, op->scan->buff) != 0)
    return 1;
  lua_pushnil(L);
  return 0;
}


/*
** Reads with the formats at first .. top-1 (liolib's layout: the file is
** somewhere else, at 'idx'). Formats are read until one fails, whose
** result becomes nil; a read error makes the results nil, message, errno.
*/
static int g_read (lua_State *L, int idx, int first) {
  int nargs = lua_gettop(L) - 1;
  int n, ok = 1;
  Op op;
  Buf buf;
  Scan scan;
  op_init(&op);
  buf_init(&buf);
  op.buf = &buf;
  op.scan = &scan;
  op.clear = 1;  /* as every read call of liolib: EOF is not sticky */
  if (nargs == 0) {
    ok = rd_line(L, idx, &op, 1);
    n = first + 1;
  }
  else {
    luaL_checkstack(L, nargs + LUA_MINSTACK, "too many arguments");
    for (n = first; nargs-- > 0 && ok && op.err == 0; n++) {
      if (lua_type(L, n) == LUA_TNUMBER) {
        lua_Integer l = luaL_checkinteger(L, n);
        ok = rd_chars(L, idx, &op, l);
      }
      else {
        const char *fmt = luaL_checkstring(L, n);
        if (*fmt == '*') fmt++;  /* Lua 5.3's "*l" */
        switch (*fmt) {
          case 'n': ok = rd_number(L, idx, &op); break;
          case 'l': ok = rd_line(L, idx, &op, 1); break;
          case 'L': ok = rd_line(L, idx, &op, 0); break;
          case 'a': ok = rd_all(L, idx, &op); break;
          default: return luaL_argerror(L, n, "invalid format");
        }
      }
    }
  }
  if (op.err != 0)
    return fileerror(L, op.err);
  if (!ok) {
    lua_pop(L, 1);
    luaL_pushfail(L);
  }
  return n - first;
}


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
  return g_read(L, getiofile(L, orig_input, "input"), 1);
}


static int f_read (lua_State *L) {
  checkopen(L, 1);
  return g_read(L, 1, 2);
}


/* Python's file.readline(): the line with its newline; nil (Python: "")
** at the end, so that `if not line then break end` reads naturally. */
static int f_readline (lua_State *L) {
  checkopen(L, 1);
  lua_settop(L, 1);
  lua_pushliteral(L, "L");
  return g_read(L, 1, 2);
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
  while (isbusy(f = checkopen(L, idx)->f)) {
    gilua_release(L);
    busy_wait(f);
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
    if (p->closef == closef_std || !isbusy(f = p->f)) break;
    gilua_release(L);
    busy_wait(f);
    gilua_acquire(L);
    gilua_checkinterrupt(L);
  }
  cf = p->closef;
  if (cf != NULL && (cf == closef_file || cf == closef_pipe)) {
    FILE *f = p->f;
    int res, en;
    p->closef = NULL;  /* closed for all from now on */
    gilua_release(L);
    errno = 0;
    res = (cf == closef_pipe) ? pclose(f) : fclose(f);
    en = errno;
    gilua_acquire(L);
    errno = en;
    return (cf == closef_pipe) ? luaL_execresult(L, res)
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
  if (!isclosed(p) && isbusy(p->f)) return 0;
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
  if (*slot == NULL && nres == 1
      && (p = (LStream *)luaL_testudata(L, -1, LUA_FILEHANDLE)) != NULL
      && !isclosed(p) && p->closef != closef_std)
    *slot = p->closef;
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
  n = g_read(L, lua_upvalueindex(1), 2);
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
  if (op->total >= writable(f)) return 0;
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
      if (left > 0 && !again(op, f)) {
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
  op_init(&op);
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
      run(L, idx, &op);
      settle(L, &op);
    }
    if (bad) luaL_checklstring(L, i, NULL);  /* raises */
  }
  if (op.err != 0)
    return fileerror(L, op.err);
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
  return flushed(f);
}


static void flush_slow (Op *op, FILE *f) {
  int en;
  do {
    if (fflush_unlocked(f) == 0) return;
    en = errno;
  } while (again(op, f));
  if (op->err == 0) op->err = en ? en : EIO;
}


static int g_flush (lua_State *L, int idx) {
  Op op;
  op_init(&op);
  op.fast = flush_fast;
  op.slow = flush_slow;
  run(L, idx, &op);
  settle(L, &op);
  if (op.err != 0)
    return fileerror(L, op.err);
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


static int learnstd (lua_State *L, int io) {
  LStream *p;
  lua_getfield(L, io, "stdin");
  p = (LStream *)luaL_testudata(L, -1, LUA_FILEHANDLE);
  closef_std = (p != NULL) ? p->closef : NULL;
  lua_pop(L, 1);
  return closef_std != NULL;
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
  orig_input = original(L, io, "input");
  orig_output = original(L, io, "output");
  orig_open = original(L, io, "open");
  orig_popen = original(L, io, "popen");
  orig_close = original(L, m, "close");
  orig_seek = original(L, m, "seek");
  orig_setvbuf = original(L, m, "setvbuf");
  orig_gc = original(L, mt, "__gc");
  if (!orig_input || !orig_output || !orig_open || !orig_popen
      || !orig_close || !orig_seek || !orig_setvbuf || !orig_gc
      || !learnstd(L, io))
    goto done;
  pthread_once(&once, busy_init);
  for (r = iofuncs; r->name != NULL; r++) replace(L, io, r->name, r->func);
  for (r = methods; r->name != NULL; r++) replace(L, m, r->name, r->func);
  replace(L, mt, "__close", f_tbc);
  replace(L, mt, "__gc", f_gc);
 done:
  lua_settop(L, top);
}

/* }====================================================== */
