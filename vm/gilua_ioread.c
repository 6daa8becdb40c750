/*
** gilua_ioread.c: the read formats of gilua's io library (see
** gilua_io.h): a line, a count of bytes, everything, a numeral. Each
** first tries to finish from stdio's buffer holding the GIL, then reads
** without it.
*/
#include <ctype.h>
#include <errno.h>
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "gilua_io.h"


/* Longest numeral "n" reads, as liolib. */
#define MAXNUMERAL	200


/* Reading a numeral; 'p' and 'end' when scanning stdio's buffer. */
struct Scan {
  const char *p, *end;
  int peek;          /* scanning the buffer, consuming nothing */
  int blocked;       /* ... and the buffer ended before the numeral */
  int c;             /* look-ahead */
  int n;
  int toolong;
  char point;        /* the locale's, fetched holding the GIL */
  char buff[MAXNUMERAL + 1];
};


static int getch (Op *op, FILE *f) {
  int c;
  while ((c = getc_unlocked(f)) == EOF && gio_again(op, f)) ;
  return c;
}


static int line_fast (Op *op, FILE *f) {
  const char *p, *nl;
  size_t avail = gio_readable(f, &p), len;
  if (avail == 0 || (nl = memchr(p, '\n', avail)) == NULL) return 0;
  len = (size_t)(nl - p) + 1;
  if (!gio_bufreserve(op->buf, len)) return 0;
  op->buf->n = fread_unlocked(op->buf->b, 1, len, f) - (size_t)op->chop;
  op->ok = 1;
  return 1;
}


static int addch (Op *op, int c) {
  Buf *B = op->buf;
  if (B->n == B->size && !gio_bufgrow(B, SIZE_MAX)) {
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
  if (gio_readable(f, &p) < op->count || !gio_bufreserve(op->buf, op->count))
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
      if (!gio_bufgrow(B, left)) { op->nomem = 1; return; }
      room = B->size - B->n;
    }
    if (room > left) room = left;
    got = fread_unlocked(B->b + B->n, 1, room, f);
    B->n += got;
    left -= got;
    if (got < room && !gio_again(op, f)) break;
  }
  op->ok = (B->n > 0);
}


static void all_slow (Op *op, FILE *f) {
  Buf *B = op->buf;
  for (;;) {
    size_t room = B->size - B->n, got;
    if (room == 0) {
      if (!gio_bufgrow(B, SIZE_MAX)) { op->nomem = 1; return; }
      room = B->size - B->n;
    }
    got = fread_unlocked(B->b + B->n, 1, room, f);
    B->n += got;
    if (got < room && !gio_again(op, f)) break;
  }
  op->ok = 1;
}


static int eof_fast (Op *op, FILE *f) {
  const char *p;
  return (op->ok = (gio_readable(f, &p) > 0));
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
  size_t avail = gio_readable(f, &p), used;
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
  gio_run(L, idx, op);
  gio_settle(L, op);
  gio_pushbuf(L, op->buf);
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
  gio_run(L, idx, op);
  gio_settle(L, op);
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
int gio_read (lua_State *L, int idx, int first) {
  int nargs = lua_gettop(L) - 1;
  int n, ok = 1;
  Op op;
  Buf buf;
  Scan scan;
  gio_opinit(&op);
  gio_bufinit(&buf);
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
    return gio_fileerror(L, op.err);
  if (!ok) {
    lua_pop(L, 1);
    luaL_pushfail(L);
  }
  return n - first;
}
