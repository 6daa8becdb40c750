/*
** pipes.c: our ends of a child's pipes as Lua files, and the SIGPIPE that
** a write to a child may raise.
**
** A write to the stdin of a child that has gone raises SIGPIPE, whose
** default action would end the whole interpreter (Python ignores SIGPIPE
** at start-up; gilua keeps Lua's default). Our writes block it in the
** writing thread and drop the pending signal: the write fails with EPIPE.
*/
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "subprocess.h"


/*
** {======================================================
** SIGPIPE
** =======================================================
*/

int subp_sigpipe_block (sigset_t *old) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &s, old);
  return !sigismember(old, SIGPIPE);
}


void subp_sigpipe_restore (const sigset_t *old, int unblock) {
  static const struct timespec zero = {0, 0};
  sigset_t s, pending;
  int en = errno;
  if (!unblock) return;
  sigemptyset(&s);
  sigaddset(&s, SIGPIPE);
  if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE))
    while (sigtimedwait(&s, NULL, &zero) < 0 && errno == EINTR) ;
  pthread_sigmask(SIG_SETMASK, old, NULL);
  errno = en;
}

/* }====================================================== */



/*
** {======================================================
** Pipe ends as Lua files
** =======================================================
*/

/* The stdin of a child: plain writes, except that SIGPIPE cannot kill us. */
static ssize_t stdin_write (void *cookie, const char *buf, size_t size) {
  int fd = (int)(intptr_t)cookie;
  size_t done = 0;
  sigset_t old;
  int unblock = subp_sigpipe_block(&old);
  while (done < size) {
    ssize_t n = write(fd, buf + done, size - done);
    if (n > 0) done += (size_t)n;
    else if (n == 0 || errno != EINTR || gilua_interrupt_pending()) break;
  }
  subp_sigpipe_restore(&old, unblock);
  /* Never negative (fopencookie's rule: stdio would take -1 for a count);
  ** short, with errno set, is an error. */
  return (ssize_t)done;
}


static int stdin_close (void *cookie) {
  return close((int)(intptr_t)cookie);
}


/* liolib's closef: fclose may flush into a full pipe, so without the GIL. */
int subp_stream_close (lua_State *L) {
  subp_Stream *s = (subp_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
  FILE *f = s->ls.f;
  int res, en;
  GILUA_BEGIN_ALLOW_THREADS(L)
    res = fclose(f);
    en = errno;
  GILUA_END_ALLOW_THREADS(L)
  errno = en;
  return luaL_fileresult(L, res == 0, NULL);
}


subp_Stream *subp_newstream (lua_State *L) {
  subp_Stream *s = (subp_Stream *)lua_newuserdatauv(L, sizeof *s, 0);
  s->ls.f = NULL;
  s->ls.closef = NULL;
  s->fd = -1;
  luaL_setmetatable(L, LUA_FILEHANDLE);
  return s;
}


FILE *subp_openstream (int fd, int writing, lua_Integer bufsize) {
  FILE *f;
  if (writing) {
    cookie_io_functions_t io = {NULL, stdin_write, NULL, stdin_close};
    f = fopencookie((void *)(intptr_t)fd, "w", io);
  }
  else f = fdopen(fd, "r");
  if (f == NULL) return NULL;
  if (bufsize == 0) setvbuf(f, NULL, _IONBF, 0);
  else if (bufsize == 1) setvbuf(f, NULL, _IOLBF, BUFSIZ);
  else if (bufsize > 1) setvbuf(f, NULL, _IOFBF, (size_t)bufsize);
  return f;
}


int subp_handle_fd (luaL_Stream *p) {
  if (p->closef == subp_stream_close) return ((subp_Stream *)p)->fd;
  return fileno(p->f);
}


luaL_Stream *subp_openhandle (lua_State *L, int idx) {
  luaL_Stream *p = (luaL_Stream *)luaL_testudata(L, idx, LUA_FILEHANDLE);
  return (p != NULL && p->closef != NULL) ? p : NULL;
}


void subp_closefd (int *fd) {
  if (*fd >= 0) {
    close(*fd);
    *fd = -1;
  }
}

/* }====================================================== */
