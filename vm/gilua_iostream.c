/*
** gilua_iostream.c: operations on a stream with the GIL released, for
** gilua's io library (see gilua_io.h): the busy list of FILEs in use
** without the GIL, and running an operation on a FILE.
*/
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gilua_io.h"


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
static pthread_cond_t busy_cond;        /* gilua_cond_init, in gio_businit */
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


int gio_isbusy (FILE *f) {
  int r;
  pthread_mutex_lock(&busy_mtx);
  r = busy_has(f);
  pthread_mutex_unlock(&busy_mtx);
  return r;
}


/* 'f' is only compared, never used: it may be closed when this returns.
** Through gilua_condwait, so that Ctrl-C ends the main thread's wait:
** the caller checks for it once it has the GIL back. */
void gio_busywait (FILE *f) {
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


void gio_businit (void) {
  gilua_cond_init(&busy_cond);
  pthread_atfork(busy_prefork, busy_postfork, busy_child);
}

/* }====================================================== */



/*
** {======================================================
** Operations on a stream, with or without the GIL
** =======================================================
*/

void gio_buffree (Buf *B) {
  if (B->b != B->init) free(B->b);
  gio_bufinit(B);
}


/* Room for at least one more byte and at most 'want'; 0 if out of memory. */
int gio_bufgrow (Buf *B, size_t want) {
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
int gio_bufreserve (Buf *B, size_t len) {
  char *nb;
  if (len <= B->size) return 1;
  if ((nb = malloc(len)) == NULL) return 0;
  gio_buffree(B);
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
int gio_again (Op *op, FILE *f) {
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


/*
** Runs 'op' on the file at 'idx', a file handle the caller has checked.
** Whether it is open is checked each time: another thread may have closed
** it while this one waited.
*/
void gio_run (lua_State *L, int idx, Op *op) {
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


/* After gio_run: raise what cannot be returned. */
void gio_settle (lua_State *L, Op *op) {
  if (op->intr || op->nomem) {
    if (op->buf) gio_buffree(op->buf);
    if (op->intr) gilua_checkinterrupt(L);  /* raises KeyboardInterrupt */
    if (op->nomem) {
      lua_pushliteral(L, "not enough memory");
      lua_error(L);
    }
  }
}


/* A read's bytes become a Lua string. (If Lua itself is out of memory
** here, the malloc'd block leaks: pushing it is the last chance.) */
void gio_pushbuf (lua_State *L, Buf *B) {
  lua_pushlstring(L, B->b, B->n);
  gio_buffree(B);
}


int gio_fileerror (lua_State *L, int en) {
  errno = en;
  return luaL_fileresult(L, 0, NULL);
}

/* }====================================================== */
