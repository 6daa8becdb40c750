/*
** connection.c: Connection for _multiprocessing: frames (a length, then
** the bytes) over sockets, read and written without the GIL; Pipe.
*/
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "mp.h"

#define CONN_MT "_multiprocessing.Connection"


/*
** {==================================================================
** Frames: u32 length (0xffffffff: u64 length follows), then the bytes
** ===================================================================
*/

/*
** With 'intr', Ctrl-C stops the waits (EINTR), through the interruptible
** wait: a read's wait for the first byte of a message only, since the
** rest is on its way and a frame cut short would leave the connection out
** of step; any wait of a write for room, since the reader may never come
** (a message cut short there breaks the connection, as in Python).
*/
static int wait_fd (int fd, short events) {
  struct pollfd p;
  p.fd = fd;
  p.events = events;
  p.revents = 0;
  return gilua_waitfds(&p, 1, GILUA_FOREVER) < 0 ? errno : 0;
}


int mp_write_all (int fd, const char *s, size_t n, int intr) {
  int sock = 1, e;
  while (n > 0) {
    ssize_t w = -1;
    if (sock) {
      w = send(fd, s, n, MSG_NOSIGNAL | (intr ? MSG_DONTWAIT : 0));
      if (w < 0 && errno == ENOTSOCK) sock = 0;
    }
    if (!sock) {
      if (intr && (e = wait_fd(fd, POLLOUT)) != 0) return e;
      w = write(fd, s, n);
    }
    if (w < 0) {
      if (errno == EINTR) continue;
      if (intr && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if ((e = wait_fd(fd, POLLOUT)) != 0) return e;
        continue;
      }
      return errno;
    }
    s += w;
    n -= (size_t)w;
  }
  return 0;
}


int mp_read_all (int fd, char *s, size_t n, int intr) {
  size_t got = 0;
  if (intr && n > 0) {
    ssize_t r = recv(fd, s, n, MSG_DONTWAIT);
    if (r > 0) got = (size_t)r;
    else if (r == 0) return -1;
    else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTSOCK ||
             errno == EINTR) {
      int e = wait_fd(fd, POLLIN);
      if (e != 0) return e;
    }
    else return errno;
  }
  while (got < n) {
    ssize_t r = read(fd, s + got, n - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (r == 0) return got == 0 ? -1 : EPIPE;
    got += (size_t)r;
  }
  return 0;
}


size_t mp_header (char *h, size_t len) {
  if (len < 0xffffffffu) {
    uint32_t l = (uint32_t)len;
    memcpy(h, &l, 4);
    return 4;
  }
  else {
    uint32_t m = 0xffffffffu;
    uint64_t l = len;
    memcpy(h, &m, 4);
    memcpy(h + 4, &l, 8);
    return 12;
  }
}


/* The body of a frame is read in pieces of at most FRAME_CHUNK more
** than has arrived, so a header that announces a huge length costs memory
** only as its bytes come. */
#define FRAME_CHUNK ((size_t)1 << 20)

/* Reads one frame into b (reset first), without the GIL. A length above
** 'maxlen' (or than a buffer can hold) is EMSGSIZE, with the body left
** unread: the caller must not read the connection again. The buffer is
** never NULL, even for 0 bytes. */
int mp_read_frame (int fd, mp_buf *b, size_t maxlen) {
  uint32_t l;
  uint64_t len;
  size_t got = 0;
  int r = mp_read_all(fd, (char *)&l, 4, 1);
  if (r != 0) return r;
  len = l;
  if (l == 0xffffffffu) {
    r = mp_read_all(fd, (char *)&len, 8, 0);
    if (r != 0) return r == -1 ? EPIPE : r;
  }
  if (len > maxlen || len > (uint64_t)PTRDIFF_MAX) return EMSGSIZE;
  b->n = 0;
  if (b->p == NULL) {
    if ((b->p = malloc(1)) == NULL) return ENOMEM;
    b->cap = 1;
  }
  while (got < len) {
    size_t want = (size_t)len - got;
    if (want > FRAME_CHUNK) want = FRAME_CHUNK;
    if (got + want > b->cap) {
      size_t cap = b->cap > 256 ? b->cap : 256;
      char *p;
      while (cap < got + want) cap *= 2;
      if (cap > (size_t)len) cap = (size_t)len;
      p = realloc(b->p, cap);
      if (p == NULL) return ENOMEM;
      b->p = p;
      b->cap = cap;
    }
    r = mp_read_all(fd, b->p + got, want, 0);
    if (r != 0) return r == -1 ? EPIPE : r;
    got += want;
  }
  b->n = (size_t)len;
  return 0;
}


int mp_read_error (lua_State *L, int r) {
  if (r == EINTR) gilua_checkinterrupt(L);
  if (r == -1) return gilua_raise(L, "EOFError", NULL);
  if (r == EPIPE) return gilua_raise(L, "EOFError", "connection closed in the middle of a message");
  if (r == EMSGSIZE) return gilua_raise(L, "OSError", "bad message length");
  return gilua_oserror(L, r, "recv", NULL);
}

/* }================================================================== */


/*
** {==================================================================
** Connection
** ===================================================================
*/

typedef struct conn {
  int rfd, wfd;   /* the same socket for a duplex connection; -1: none */
} conn;


static conn *checkconn (lua_State *L, int open) {
  conn *c = luaL_checkudata(L, 1, CONN_MT);
  if (open && c->rfd < 0 && c->wfd < 0)
    gilua_raise(L, "OSError", "handle is closed");
  return c;
}


static conn *newconn (lua_State *L, int rfd, int wfd) {
  conn *c = lua_newuserdatauv(L, sizeof *c, 0);
  c->rfd = rfd;
  c->wfd = wfd;
  luaL_setmetatable(L, CONN_MT);
  return c;
}


void mp_newconn (lua_State *L, int rfd, int wfd) {
  newconn(L, rfd, wfd);
}


static int wfd_of (lua_State *L, conn *c) {
  if (c->wfd < 0) {
    if (c->rfd < 0) return gilua_raise(L, "OSError", "handle is closed");
    return gilua_raise(L, "OSError", "connection is read-only");
  }
  return c->wfd;
}


static int rfd_of (lua_State *L, conn *c) {
  if (c->rfd < 0) {
    if (c->wfd < 0) return gilua_raise(L, "OSError", "handle is closed");
    return gilua_raise(L, "OSError", "connection is write-only");
  }
  return c->rfd;
}


/* Sends the frame held in b (header space reserved at its start). */
static void send_frame (lua_State *L, int fd, mp_buf *b, size_t hlen) {
  int r;
  char h[12];
  size_t k = mp_header(h, b->n - hlen);
  if (k != hlen) {  /* a huge message: move the bytes for the long header */
    mp_bufreserve(L, b, 8);
    memmove(b->p + 12, b->p + 4, b->n - 4);
    b->n += 8;
  }
  memcpy(b->p, h, k);
  GILUA_BEGIN_ALLOW_THREADS(L)
    r = mp_write_all(fd, b->p, b->n, 1);
  GILUA_END_ALLOW_THREADS(L)
  if (r == EINTR) gilua_checkinterrupt(L);
  if (r != 0) gilua_oserror(L, r, "send", NULL);
}


static int conn_send (lua_State *L) {
  conn *c = checkconn(L, 1);
  int fd = wfd_of(L, c);
  mp_buf *b;
  lua_settop(L, 2);
  b = mp_newbuf(L);
  mp_bufreserve(L, b, 4);
  b->n = 4;
  mp_encode(L, 2, b);
  send_frame(L, fd, b, 4);
  return 0;
}


/* send_bytes(s, [offset, [size]]): offset 0-based as in Python. */
static int conn_send_bytes (lua_State *L) {
  conn *c = checkconn(L, 1);
  int fd = wfd_of(L, c);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  lua_Integer off = luaL_optinteger(L, 3, 0), size;
  mp_buf *b;
  /* compared as sizes, never added: any integer may come */
  if (off < 0 || (lua_Unsigned)off > len)
    return gilua_raise(L, "ValueError", "offset is out of range");
  size = luaL_optinteger(L, 4, (lua_Integer)(len - (size_t)off));
  if (size < 0) return gilua_raise(L, "ValueError", "size is negative");
  if ((lua_Unsigned)size > len - (size_t)off)
    return gilua_raise(L, "ValueError", "buffer length < offset + size");
  b = mp_newbuf(L);
  mp_bufreserve(L, b, 4 + (size_t)size);
  b->n = 4;
  mp_bufadd(L, b, s + off, (size_t)size);
  send_frame(L, fd, b, 4);
  return 0;
}


static mp_buf *recv_frame (lua_State *L, conn *c, size_t maxlen) {
  int fd = rfd_of(L, c), r;
  mp_buf *b = mp_newbuf(L);
  GILUA_BEGIN_ALLOW_THREADS(L)
    r = mp_read_frame(fd, b, maxlen);
  GILUA_END_ALLOW_THREADS(L)
  if (r == EMSGSIZE) {
    /* The body is still in the socket, where the next read would take it
    ** for a header: as Python does, the connection can no longer be read
    ** (closed if it cannot be written either). */
    if (c->wfd != c->rfd) close(c->rfd);
    c->rfd = -1;
  }
  if (r != 0) mp_read_error(L, r);
  return b;
}


static int conn_recv (lua_State *L) {
  conn *c = checkconn(L, 1);
  mp_buf *b;
  lua_settop(L, 1);
  b = recv_frame(L, c, SIZE_MAX);
  mp_decode(L, b->p, b->n);
  return 1;
}


/* recv_bytes([maxlength]): a longer message is an OSError, and the
** connection is then unreadable (Python's rule). */
static int conn_recv_bytes (lua_State *L) {
  conn *c = checkconn(L, 1);
  lua_Integer maxlen = -1;
  mp_buf *b;
  if (!lua_isnoneornil(L, 2)) {
    if (!lua_isinteger(L, 2))
      return gilua_raise(L, "TypeError", "recv_bytes(): argument 'maxlength' must be an integer, not %s",
                         luaL_typename(L, 2));
    maxlen = lua_tointeger(L, 2);
    if (maxlen < 0) return gilua_raise(L, "ValueError", "negative maxlength");
  }
  lua_settop(L, 1);
  b = recv_frame(L, c, maxlen < 0 ? SIZE_MAX : (size_t)maxlen);
  if (b->n == 0) lua_pushliteral(L, "");
  else lua_pushlstring(L, b->p, b->n);
  return 1;
}


int mp_poll_fd (lua_State *L, int fd, double timeout) {
  struct pollfd p;
  p.fd = fd;
  p.events = POLLIN;
  p.revents = 0;
  return gilua_poll(L, &p, 1, gilua_deadline_after(timeout), "poll") > 0;
}


/* poll([timeout]): without an argument it does not wait (Python's
** default of 0); poll(nil) waits for ever; a negative timeout is 0. */
static int conn_poll (lua_State *L) {
  conn *c = checkconn(L, 1);
  int fd = rfd_of(L, c);
  double timeout = 0;
  if (lua_gettop(L) >= 2)
    timeout = gilua_timeout(L, 2, "Connection.poll", NULL, GILUA_NEG_ZERO);
  lua_pushboolean(L, mp_poll_fd(L, fd, timeout));
  return 1;
}


static int conn_close (lua_State *L) {
  conn *c = luaL_checkudata(L, 1, CONN_MT);
  if (c->rfd >= 0) close(c->rfd);
  if (c->wfd >= 0 && c->wfd != c->rfd) close(c->wfd);
  c->rfd = c->wfd = -1;
  return 0;
}


static int conn_fileno (lua_State *L) {
  conn *c = checkconn(L, 1);
  lua_pushinteger(L, c->rfd >= 0 ? c->rfd : c->wfd);
  return 1;
}


static int conn_index (lua_State *L) {
  conn *c = luaL_checkudata(L, 1, CONN_MT);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "closed") == 0) lua_pushboolean(L, c->rfd < 0 && c->wfd < 0);
  else if (strcmp(k, "readable") == 0) lua_pushboolean(L, c->rfd >= 0);
  else if (strcmp(k, "writable") == 0) lua_pushboolean(L, c->wfd >= 0);
  else {
    lua_getfield(L, lua_upvalueindex(1), "methods");
    lua_getfield(L, -1, k);
  }
  return 1;
}


static int conn_tostring (lua_State *L) {
  conn *c = luaL_checkudata(L, 1, CONN_MT);
  if (c->rfd < 0 && c->wfd < 0)
    lua_pushliteral(L, "<multiprocessing.connection.Connection closed>");
  else
    lua_pushfstring(L, "<multiprocessing.connection.Connection fd=%d>",
                    c->rfd >= 0 ? c->rfd : c->wfd);
  return 1;
}


/* Pipe(duplex) -> two connections. Sockets (not pipes) so that writing to
** a closed peer is an error (MSG_NOSIGNAL), not a SIGPIPE. */
static int l_pipe (lua_State *L) {
  int duplex = lua_isnone(L, 1) || lua_toboolean(L, 1);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return gilua_oserror(L, errno, "socketpair", NULL);
  if (duplex) {
    newconn(L, sv[0], sv[0]);
    newconn(L, sv[1], sv[1]);
  }
  else {
    shutdown(sv[0], SHUT_WR);
    shutdown(sv[1], SHUT_RD);
    newconn(L, sv[0], -1);
    newconn(L, -1, sv[1]);
  }
  return 2;
}


/* A connection on existing descriptors (spawn's bootstrap). */
static int l_conn (lua_State *L) {
  newconn(L, (int)luaL_optinteger(L, 1, -1), (int)luaL_optinteger(L, 2, -1));
  return 1;
}


static int conn_fds (lua_State *L) {
  conn *c = checkconn(L, 1);
  lua_pushinteger(L, c->rfd);
  lua_pushinteger(L, c->wfd);
  return 2;
}


/* _settimeout(seconds or nil): a limit on each read and write that
** blocks in the middle of a message (SO_RCVTIMEO, SO_SNDTIMEO), so that a
** peer that stops half-way through a handshake cannot hold the reader;
** nil takes the limit away. The wait for a message to begin is poll's. */
static int conn_settimeout (lua_State *L) {
  conn *c = checkconn(L, 1);
  double t = lua_isnoneornil(L, 2) ? 0 : gilua_timeout(L, 2, "Connection._settimeout",
                                                       NULL, GILUA_NEG_ZERO);
  struct timeval tv;
  if (t < 0) t = 0;   /* GILUA_FOREVER is 0 here: no limit */
  tv.tv_sec = (time_t)t;
  tv.tv_usec = (suseconds_t)((t - (double)tv.tv_sec) * 1e6);
  if (t > 0 && tv.tv_sec == 0 && tv.tv_usec == 0) tv.tv_usec = 1;
  if (c->rfd >= 0) (void)setsockopt(c->rfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (c->wfd >= 0) (void)setsockopt(c->wfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return 0;
}


/* _shutdown(): ends the socket both ways, without closing it, so that a
** thread blocked reading it (a server's client thread) sees end of file
** and closes it itself. */
static int conn_shutdown (lua_State *L) {
  conn *c = checkconn(L, 0);
  if (c->rfd >= 0) (void)shutdown(c->rfd, SHUT_RDWR);
  if (c->wfd >= 0 && c->wfd != c->rfd) (void)shutdown(c->wfd, SHUT_RDWR);
  return 0;
}


/* Forgets the descriptors without closing them (they were handed over). */
static int conn_detach (lua_State *L) {
  conn *c = checkconn(L, 0);
  c->rfd = c->wfd = -1;
  return 0;
}


static const luaL_Reg conn_methods[] = {
  {"send", conn_send},
  {"recv", conn_recv},
  {"send_bytes", conn_send_bytes},
  {"recv_bytes", conn_recv_bytes},
  {"poll", conn_poll},
  {"close", conn_close},
  {"fileno", conn_fileno},
  {"_detach", conn_detach},
  {"_settimeout", conn_settimeout},
  {"_shutdown", conn_shutdown},
  {"_fds", conn_fds},
  {NULL, NULL}
};

/* }================================================================== */



static const luaL_Reg funcs[] = {
  {"Pipe", l_pipe},
  {"Connection", l_conn},
  {NULL, NULL}
};


void mp_open_connection (lua_State *L) {
  static const luaL_Reg meta[] = {
    {"__index", conn_index}, {"__tostring", conn_tostring},
    {"__close", conn_close}, {"__gc", conn_close}, {NULL, NULL}
  };
  gilua_newclass(L, CONN_MT, conn_methods, meta);
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
}
