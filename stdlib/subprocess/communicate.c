/*
** communicate.c: the multiplexed exchange behind Popen.communicate, class
** "_subprocess.communicator".
**
** It polls the pipes, writing at most PIPE_BUF bytes after POLLOUT (which
** then cannot block) on descriptors left in blocking mode: O_NONBLOCK
** would belong to the open file description, shared with any other child
** the pipe was handed to.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "subprocess.h"

#define COMM_MT "_subprocess.communicator"

/* Bytes read from a pipe at a time. */
#define CHUNK  65536


typedef struct Buf {
  char *b;
  size_t n, size;
} Buf;


typedef struct Comm {
  int fd[3];         /* our copies: to the child's stdin, from its stdout
                        and stderr; -1 when absent or finished */
  int piped[3];      /* 1, 2: that output was asked for */
  int busy;          /* a thread runs the exchange (under the GIL) */
  size_t off;        /* bytes of input written */
  Buf out[3];        /* 1, 2 */
} Comm;


static int buf_room (Buf *B, size_t want) {
  if (B->size - B->n < want) {
    size_t size = B->size ? B->size : CHUNK;
    char *nb;
    while (size - B->n < want) {
      if (size > ((size_t)-1) / 2) return 0;
      size *= 2;
    }
    if ((nb = (char *)realloc(B->b, size)) == NULL) return 0;
    B->b = nb;
    B->size = size;
  }
  return 1;
}


static void buf_free (Buf *B) {
  free(B->b);
  B->b = NULL;
  B->n = B->size = 0;
}


static Comm *checkcomm (lua_State *L) {
  return (Comm *)luaL_checkudata(L, 1, COMM_MT);
}


static void comm_free (Comm *c) {
  int i;
  for (i = 0; i < 3; i++) {
    subp_closefd(&c->fd[i]);
    buf_free(&c->out[i]);
  }
}


static int comm_gc (lua_State *L) {
  comm_free((Comm *)lua_touserdata(L, 1));
  return 0;
}


/* comm:close(): gives up the exchange (what is unread is lost), so that
** the pipes do not wait for the collector; not while a thread runs it. */
static int comm_close (lua_State *L) {
  Comm *c = checkcomm(L);
  if (!c->busy) comm_free(c);
  return 0;
}


#if defined(__GLIBC__)
/* What stdio has already read from the pipe (a line read before
** communicate) belongs to the output; glibc's FILE is public. */
static void drain (Buf *B, FILE *f) {
  size_t n;
  if (ftrylockfile(f) != 0) return;  /* in use: never wait holding the GIL */
  n = (f->_IO_read_ptr < f->_IO_read_end)
      ? (size_t)(f->_IO_read_end - f->_IO_read_ptr) : 0;
  if (n > 0 && buf_room(B, n))
    B->n += fread_unlocked(B->b + B->n, 1, n, f);
  funlockfile(f);
}
#else
static void drain (Buf *B, FILE *f) { (void)B; (void)f; }
#endif


/* Closes the Lua file at 'idx' through its own method (which waits for
** threads using it and releases the GIL), ignoring errors as Python's
** communicate does (a broken pipe, above all). */
static void closehandle (lua_State *L, int idx) {
  sigset_t old;
  int unblock = subp_sigpipe_block(&old);
  lua_getfield(L, idx, "close");
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
  subp_sigpipe_restore(&old, unblock);
}


/*
** _subprocess.communicator(stdin, stdout, stderr, has_input): takes over
** the open Popen files given (nil or closed ones take no part). The files
** are closed; the exchange works on copies of their descriptors.
*/
static int l_communicator (lua_State *L) {
  int has_input = lua_toboolean(L, 4);
  Comm *c;
  int i;
  lua_settop(L, 4);
  c = (Comm *)lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  c->fd[0] = c->fd[1] = c->fd[2] = -1;
  luaL_setmetatable(L, COMM_MT);
  for (i = 0; i < 3; i++) {
    luaL_Stream *p = subp_openhandle(L, i + 1);
    if (p == NULL) continue;
    if (i > 0) {
      c->piped[i] = 1;
      drain(&c->out[i], p->f);
    }
    if (i > 0 || has_input) {
      int fd = subp_handle_fd(p);
      if (fd < 0 || (c->fd[i] = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0)
        return gilua_oserror(L, fd < 0 ? EBADF : errno, "communicate", NULL);
    }
    closehandle(L, i + 1);
  }
  return 1;
}


enum { DONE = -1, TIMEOUT = -2, INTERRUPTED = -3, NOMEM = -4 };

/*
** The exchange, without the GIL: writes the input, reads the outputs until
** their ends, or until the deadline (GILUA_FOREVER: none). Returns DONE,
** TIMEOUT, INTERRUPTED, NOMEM or an errno.
*/
static int exchange (Comm *c, const char *in, size_t len, double deadline) {
  for (;;) {
    struct pollfd pfd[3];
    int which[3], n = 0, i, r;
    if (c->fd[0] >= 0 && c->off >= len) subp_closefd(&c->fd[0]);
    for (i = 0; i < 3; i++) {
      if (c->fd[i] < 0) continue;
      pfd[n].fd = c->fd[i];
      pfd[n].events = i == 0 ? POLLOUT : POLLIN;
      pfd[n].revents = 0;
      which[n++] = i;
    }
    if (n == 0) return DONE;
    r = gilua_waitfds(pfd, n, deadline);
    if (r == 0) return TIMEOUT;
    if (r < 0) return errno == EINTR ? INTERRUPTED : errno;
    for (i = 0; i < n; i++) {
      int k = which[i];
      if (pfd[i].revents == 0) continue;
      if (pfd[i].revents & POLLNVAL) return EBADF;
      if (k == 0) {
        /* POLLOUT promises room for PIPE_BUF bytes, no more */
        size_t chunk = len - c->off;
        ssize_t w;
        if (chunk > PIPE_BUF) chunk = PIPE_BUF;
        w = write(c->fd[0], in + c->off, chunk);
        if (w >= 0) c->off += (size_t)w;
        else if (errno == EPIPE) subp_closefd(&c->fd[0]);  /* it stopped reading */
        else if (errno != EINTR && errno != EAGAIN) return errno;
      }
      else {
        Buf *B = &c->out[k];
        ssize_t got;
        if (!buf_room(B, CHUNK)) return NOMEM;
        got = read(c->fd[k], B->b + B->n, CHUNK);
        if (got > 0) B->n += (size_t)got;
        else if (got == 0) subp_closefd(&c->fd[k]);
        else if (errno != EINTR && errno != EAGAIN) return errno;
      }
    }
  }
}


static void pushout (lua_State *L, Comm *c, int i, int partial) {
  if (!c->piped[i] || (partial && c->out[i].n == 0)) lua_pushnil(L);
  else lua_pushlstring(L, c->out[i].b ? c->out[i].b : "", c->out[i].n);
}


/*
** comm:run(input, timeout) -> true, stdout, stderr once both outputs have
** ended (nil for those not piped); false, stdout so far, stderr so far
** (nil when nothing came) if the timeout ran out first: a later call goes
** on where this one stopped. 'input' must be the same string each time.
*/
static int comm_run (lua_State *L) {
  Comm *c = checkcomm(L);
  size_t len = 0;
  const char *in = luaL_optlstring(L, 2, NULL, &len);
  double timeout = gilua_timeout(L, 3, "Popen.communicate", NULL, GILUA_NEG_ZERO);
  double deadline;
  int st, unblock, i;
  sigset_t old;
  if (c->busy)
    return gilua_raise(L, "RuntimeError",
                       "communicate() is already running in another thread");
  if (in == NULL) len = 0;
  deadline = gilua_deadline_after(timeout);
  c->busy = 1;
  unblock = subp_sigpipe_block(&old);
  GILUA_BEGIN_ALLOW_THREADS(L)
    st = exchange(c, in, len, deadline);
  GILUA_END_ALLOW_THREADS(L)
  subp_sigpipe_restore(&old, unblock);
  c->busy = 0;
  switch (st) {
    case DONE:
      lua_pushboolean(L, 1);
      pushout(L, c, 1, 0);
      pushout(L, c, 2, 0);
      for (i = 1; i < 3; i++) buf_free(&c->out[i]);
      return 3;
    case TIMEOUT:
      lua_pushboolean(L, 0);
      pushout(L, c, 1, 1);
      pushout(L, c, 2, 1);
      return 3;
    case INTERRUPTED:
      gilua_checkinterrupt(L);
      return 0;
    case NOMEM:
      return gilua_raise(L, "MemoryError", "out of memory reading a child's output");
    default:
      return gilua_oserror(L, st, "communicate", NULL);
  }
}


static const luaL_Reg comm_methods[] = {
  {"run", comm_run},
  {"close", comm_close},
  {NULL, NULL}
};


void subp_open_communicate (lua_State *L) {
  static const luaL_Reg meta[] = {{"__gc", comm_gc}, {NULL, NULL}};
  gilua_newclass(L, COMM_MT, comm_methods, meta);
  lua_pop(L, 1);
  lua_pushcfunction(L, l_communicator);
  lua_setfield(L, -2, "communicator");
}
