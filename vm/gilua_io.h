/*
** gilua_io.h: shared between the files of gilua's io library (vm/).
**
** Lua's io library, waiting without the GIL, is three files:
**   gilua_iostream.c  operations on a stream with the GIL released: the
**                     busy list, running an operation fast (GIL held) or
**                     slow (GIL released), settling its outcome
**   gilua_ioread.c    the read formats ("l", "L", "n", "a", a count)
**   gilua_io.c        the io functions and file methods: read, write,
**                     lines, flush, close..., and installing them
** gilua_io.c calls the other two, gilua_ioread.c calls gilua_iostream.c.
**
** Three rules keep the GIL's release safe:
** - no Lua API call without the GIL: what is written stays anchored on the
**   stack, what is read is gathered in C memory and pushed afterwards;
** - holding the GIL, never wait for a FILE lock (its holder may be waiting
**   for input, then for the GIL): only ftrylockfile, and the FILE lock is
**   let go before taking the GIL back;
** - a FILE in use without the GIL is on the busy list, and whatever would
**   close it or lock it holding the GIL waits until it is off the list.
*/
#ifndef gilua_io_h
#define gilua_io_h

#include <stdio.h>
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
** the inline getc_unlocked, touching the FILE from our files, would look
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

#include "gilua_vm.h"


typedef luaL_Stream LStream;

#define isclosed(p)	((p)->closef == NULL)

/* Lines that fit here are read without malloc. */
#define BUFINIT		((size_t)LUAL_BUFFERSIZE)


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
static inline size_t gio_readable (FILE *f, const char **p) {
  *p = f->_IO_read_ptr;
  return (f->_IO_read_ptr < f->_IO_read_end)
         ? (size_t)(f->_IO_read_end - f->_IO_read_ptr) : 0;
}


static inline size_t gio_writable (FILE *f) {
  return (f->_IO_write_ptr < f->_IO_write_end)
         ? (size_t)(f->_IO_write_end - f->_IO_write_ptr) : 0;
}


/* A write-only stream with nothing pending: fflush would do nothing. */
static inline int gio_flushed (FILE *f) {
  return __fwriting(f) && !__freadable(f) && __fpending(f) == 0;
}

#else

static inline size_t gio_readable (FILE *f, const char **p) {
  (void)f; *p = NULL;
  return 0;
}

static inline size_t gio_writable (FILE *f) { (void)f; return 0; }

static inline int gio_flushed (FILE *f) { (void)f; return 0; }

#endif

/* }====================================================== */



/*
** {======================================================
** Operations on a stream (gilua_iostream.c)
** =======================================================
*/

/* Bytes read without the GIL; malloc'd only past BUFINIT. */
typedef struct Buf {
  char *b;
  size_t n, size;
  char init[BUFINIT];
} Buf;


/* A numeral being read (gilua_ioread.c), a string being written
** (gilua_io.c). */
typedef struct Scan Scan;
typedef struct Seg Seg;

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


static inline void gio_opinit (Op *op) {
  memset(op, 0, sizeof *op);
}


static inline void gio_bufinit (Buf *B) {
  B->b = B->init;
  B->n = 0;
  B->size = BUFINIT;
}

/* Frees what B holds past its initial room, and empties it. */
void gio_buffree(Buf *B);
/* Room for at least one more byte and at most 'want'; 0 if out of memory. */
int gio_bufgrow(Buf *B, size_t want);
/* Room for 'len' bytes in an empty buffer; 0 if out of memory. */
int gio_bufreserve(Buf *B, size_t len);

/* Without the GIL, after a stdio call on f fell short: 1 to retry it (a
** signal other than Ctrl-C cut it short); else the error, if any, is
** recorded in op (op->intr for Ctrl-C). */
int gio_again(Op *op, FILE *f);

/* Runs 'op' on the file at 'idx', a file handle the caller has checked:
** op->fast holding the GIL if it can, else op->slow without it. Raises if
** the file is closed (another thread may have closed it meanwhile). */
void gio_run(lua_State *L, int idx, Op *op);
/* After gio_run: raises what cannot be returned (Ctrl-C, out of memory). */
void gio_settle(lua_State *L, Op *op);
/* Pushes a read's bytes as a Lua string and frees them. */
void gio_pushbuf(lua_State *L, Buf *B);
/* Pushes liolib's results for a failure with errno 'en'. */
int gio_fileerror(lua_State *L, int en);

/* The busy list, for what must wait until no thread uses a FILE: whether
** one does, and a wait (GIL released) until none does or Ctrl-C comes. */
int gio_isbusy(FILE *f);
void gio_busywait(FILE *f);
void gio_businit(void);   /* once, before any of the above */

/* }====================================================== */


/* gilua_ioread.c: reads with the formats at first .. top-1 from the file
** at 'idx' (liolib's g_read); pushes the results, returns their number. */
int gio_read(lua_State *L, int idx, int first);

#endif
