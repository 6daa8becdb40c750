/*
** mp.c: the C core of multiprocessing, `_multiprocessing`: processes
** (fork, wait, signals, exit), connections (length-prefixed frames over
** sockets), process-shared locks and shared memory. multiprocessing.lua
** builds Python's classes on it. Every wait happens without the GIL: the
** other processes do not share our GIL, and our other threads must run.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "mp.h"

#define CONN_MT "_multiprocessing.Connection"
#define SYNC_MT "_multiprocessing.SemLock"
#define SHM_MT "_multiprocessing.SharedMemory"


static int raise_errno (lua_State *L, const char *what, int err) {
  lua_getglobal(L, "OSError");
  lua_pushinteger(L, err);
  lua_pushfstring(L, "%s: %s", what, strerror(err));
  lua_call(L, 2, 1);
  return lua_error(L);
}


/* Milliseconds left before 'deadline' (monotonic seconds; < 0: forever). */
static int ms_left (double deadline) {
  double left;
  if (deadline < 0) return -1;
  left = deadline - gilua_monotonic();
  if (left <= 0) return 0;
  if (left > 86400.0) return 86400000;
  return (int)(left * 1000.0 + 0.999);
}


/*
** {==================================================================
** Processes
** ===================================================================
*/

/* Defined with the queues below: what a child must finish before _exit. */
static void feeders_after_fork(void);
typedef struct qlocal qlocal;
static qlocal **feeders_hold(int *n);
static int feeders_flush(qlocal **qs, int n);


/* Before a child starts: nothing buffered is lost or printed twice. A
** full pipe may block the flush, so without the GIL. */
static void flush_std (lua_State *L) {
  GILUA_BEGIN_ALLOW_THREADS(L)
    fflush(stdout);
    fflush(stderr);
  GILUA_END_ALLOW_THREADS(L)
}


/* fork() holding the GIL. The child is the forking thread alone and owns
** the GIL (the GIL's own atfork handler). */
static int l_fork (lua_State *L) {
  pid_t pid;
  flush_std(L);
  pid = fork();
  if (pid < 0) return raise_errno(L, "fork", errno);
  if (pid == 0) feeders_after_fork();
  lua_pushinteger(L, pid);
  return 1;
}


/* Python's os._exit in a child: flush, let queued puts reach their pipes,
** and leave without the parent's exit handlers. */
static int l_exit (lua_State *L) {
  int code = (int)luaL_optinteger(L, 1, 0), n;
  qlocal **qs = feeders_hold(&n);
  gilua_release(L);
  fflush(stdout);
  fflush(stderr);
  feeders_flush(qs, n);
  _exit(code);
  return 0;
}


/* waitpid(pid, block) -> exitcode (negative: the signal), or nil if still
** running (block false) or not our child any more. */
static int l_waitpid (lua_State *L) {
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  int block = lua_toboolean(L, 2), status = 0;
  pid_t r;
  if (block) {
    GILUA_BEGIN_ALLOW_THREADS(L)
      do r = waitpid(pid, &status, 0); while (r < 0 && errno == EINTR);
    GILUA_END_ALLOW_THREADS(L)
  }
  else
    do r = waitpid(pid, &status, WNOHANG); while (r < 0 && errno == EINTR);
  if (r <= 0) return 0;
  if (WIFEXITED(status)) lua_pushinteger(L, WEXITSTATUS(status));
  else if (WIFSIGNALED(status)) lua_pushinteger(L, -WTERMSIG(status));
  else return 0;
  return 1;
}


static int l_kill (lua_State *L) {
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  int sig = (int)luaL_checkinteger(L, 2);
  if (pid <= 0) return luaL_argerror(L, 1, "bad pid");
  lua_pushboolean(L, kill(pid, sig) == 0);
  return 1;
}


/* A descriptor that becomes readable when the process ends, or nil. */
static int l_pidfd (lua_State *L) {
#ifdef SYS_pidfd_open
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  int fd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (fd >= 0) {
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    lua_pushinteger(L, fd);
    return 1;
  }
#endif
  return 0;
}


static int l_close (lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  if (fd >= 0) close(fd);
  return 0;
}


/* wait(fds, timeout) -> array of the descriptors that are readable (or
** closed), after at most 'timeout' seconds (nil: forever). */
static int l_wait (lua_State *L) {
  struct pollfd small[16], *pfd = small;
  double timeout = luaL_optnumber(L, 2, -1);
  double deadline = timeout < 0 ? -1 : gilua_monotonic() + timeout;
  lua_Integer n, i;
  int r, k = 0;
  luaL_checktype(L, 1, LUA_TTABLE);
  n = (lua_Integer)lua_rawlen(L, 1);
  if (n > 16) {
    pfd = lua_newuserdatauv(L, sizeof *pfd * (size_t)n, 0);
  }
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, 1, i + 1);
    pfd[i].fd = (int)lua_tointeger(L, -1);
    pfd[i].events = POLLIN;
    pfd[i].revents = 0;
    lua_pop(L, 1);
  }
  for (;;) {
    GILUA_BEGIN_ALLOW_THREADS(L)
      r = poll(pfd, (nfds_t)n, ms_left(deadline));
    GILUA_END_ALLOW_THREADS(L)
    if (r >= 0 || errno != EINTR) break;
    gilua_checkinterrupt(L);
  }
  if (r < 0) return raise_errno(L, "poll", errno);
  lua_createtable(L, r, 0);
  for (i = 0; i < n; i++)
    if (pfd[i].revents) {
      lua_pushinteger(L, pfd[i].fd);
      lua_rawseti(L, -2, ++k);
    }
  return 1;
}


static int l_cpu_count (lua_State *L) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) lua_pushnil(L);
  else lua_pushinteger(L, n);
  return 1;
}


/* Makes descriptor 'fd' survive exec (spawn passes it to the child). */
static int l_inheritable (lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  int flags = fcntl(fd, F_GETFD);
  if (flags >= 0) fcntl(fd, F_SETFD, lua_toboolean(L, 2) ? flags & ~FD_CLOEXEC
                                                         : flags | FD_CLOEXEC);
  return 0;
}

/* }================================================================== */


/* The path of the running interpreter (spawn starts another one). */
static int l_executable (lua_State *L) {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return 0;
  lua_pushlstring(L, buf, (size_t)n);
  return 1;
}


/* spawnv(path, argv, keep): fork and exec 'path' with 'argv'; the
** descriptors listed in 'keep' stay open in the new program. Returns the
** pid. Between fork and exec the child makes async-signal-safe calls only. */
static int l_spawnv (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int argc, nkeep, i;
  const char **argv;
  int *keep;
  pid_t pid;
  luaL_checktype(L, 2, LUA_TTABLE);
  /* before argv borrows the table's strings, which another thread could
  ** drop from the table while the GIL is released */
  flush_std(L);
  argc = (int)lua_rawlen(L, 2);
  nkeep = lua_istable(L, 3) ? (int)lua_rawlen(L, 3) : 0;
  argv = lua_newuserdatauv(L, sizeof(char *) * (size_t)(argc + 1), 0);
  keep = lua_newuserdatauv(L, sizeof(int) * (size_t)(nkeep + 1), 0);
  for (i = 0; i < argc; i++) {
    lua_rawgeti(L, 2, i + 1);
    argv[i] = luaL_checkstring(L, -1);
    lua_pop(L, 1);  /* the string stays alive in the table */
  }
  argv[argc] = NULL;
  for (i = 0; i < nkeep; i++) {
    lua_rawgeti(L, 3, i + 1);
    keep[i] = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  pid = fork();
  if (pid < 0) return raise_errno(L, "fork", errno);
  if (pid == 0) {
    for (i = 0; i < nkeep; i++) {
      int fl = fcntl(keep[i], F_GETFD);
      if (fl >= 0) fcntl(keep[i], F_SETFD, fl & ~FD_CLOEXEC);
    }
    execv(path, (char *const *)argv);
    _exit(127);
  }
  lua_pushinteger(L, pid);
  return 1;
}


/*
** {==================================================================
** Frames: u32 length (0xffffffff: u64 length follows), then the bytes
** ===================================================================
*/

/* Writes all of s[0..n) to fd without the GIL; 0 or an errno. */
static int write_all (int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
    if (w < 0 && errno == ENOTSOCK) w = write(fd, s, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    s += w;
    n -= (size_t)w;
  }
  return 0;
}


/* Reads exactly n bytes; 0, -1 at end of file before any byte, or an errno
** (EPIPE for end of file in the middle). */
static int read_all (int fd, char *s, size_t n) {
  size_t got = 0;
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


static size_t header (char *h, size_t len) {
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
** unread: the caller must not read the connection again. */
static int read_frame (int fd, mp_buf *b, size_t maxlen) {
  uint32_t l;
  uint64_t len;
  size_t got = 0;
  int r = read_all(fd, (char *)&l, 4);
  if (r != 0) return r;
  len = l;
  if (l == 0xffffffffu) {
    r = read_all(fd, (char *)&len, 8);
    if (r != 0) return r == -1 ? EPIPE : r;
  }
  if (len > maxlen || len > (uint64_t)PTRDIFF_MAX) return EMSGSIZE;
  b->n = 0;
  while (got < len) {
    size_t want = (size_t)len - got;
    if (want > FRAME_CHUNK) want = FRAME_CHUNK;
    if (got + want > b->cap) {
      size_t cap = b->cap ? b->cap : 256;
      char *p;
      while (cap < got + want) cap *= 2;
      if (cap > (size_t)len) cap = (size_t)len;
      p = realloc(b->p, cap);
      if (p == NULL) return ENOMEM;
      b->p = p;
      b->cap = cap;
    }
    r = read_all(fd, b->p + got, want);
    if (r != 0) return r == -1 ? EPIPE : r;
    got += want;
  }
  b->n = (size_t)len;
  return 0;
}


static int read_error (lua_State *L, int r) {
  if (r == -1) return gilua_raise(L, "EOFError", NULL);
  if (r == EPIPE) return gilua_raise(L, "EOFError", "connection closed in the middle of a message");
  if (r == EMSGSIZE) return gilua_raise(L, "OSError", "bad message length");
  return raise_errno(L, "recv", r);
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
  size_t k = header(h, b->n - hlen);
  if (k != hlen) {  /* a huge message: move the bytes for the long header */
    mp_bufreserve(L, b, 8);
    memmove(b->p + 12, b->p + 4, b->n - 4);
    b->n += 8;
  }
  memcpy(b->p, h, k);
  GILUA_BEGIN_ALLOW_THREADS(L)
    r = write_all(fd, b->p, b->n);
  GILUA_END_ALLOW_THREADS(L)
  if (r == EPIPE || r == ECONNRESET)
    gilua_raise(L, "BrokenPipeError", "[Errno %d] %s", r, strerror(r));
  else if (r != 0)
    raise_errno(L, "send", r);
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
  lua_Integer off = luaL_optinteger(L, 3, 0);
  lua_Integer size = luaL_optinteger(L, 4, (lua_Integer)len - off);
  mp_buf *b;
  if (off < 0 || (size_t)off > len)
    return gilua_raise(L, "ValueError", "offset is out of range");
  if (size < 0) return gilua_raise(L, "ValueError", "size is negative");
  if ((size_t)(off + size) > len)
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
    r = read_frame(fd, b, maxlen);
  GILUA_END_ALLOW_THREADS(L)
  if (r == EMSGSIZE) {
    /* The body is still in the socket, where the next read would take it
    ** for a header: as Python does, the connection can no longer be read
    ** (closed if it cannot be written either). */
    if (c->wfd != c->rfd) close(c->rfd);
    c->rfd = -1;
  }
  if (r != 0) read_error(L, r);
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


static int poll_fd (lua_State *L, int fd, double timeout) {
  struct pollfd p;
  double deadline = timeout < 0 ? -1 : gilua_monotonic() + timeout;
  int r;
  p.fd = fd;
  p.events = POLLIN;
  for (;;) {
    p.revents = 0;
    if (timeout == 0) r = poll(&p, 1, 0);
    else {
      GILUA_BEGIN_ALLOW_THREADS(L)
        r = poll(&p, 1, ms_left(deadline));
      GILUA_END_ALLOW_THREADS(L)
    }
    if (r >= 0 || errno != EINTR) break;
    gilua_checkinterrupt(L);
  }
  if (r < 0) return raise_errno(L, "poll", errno);
  return r > 0;
}


/* poll([timeout]): without an argument it does not wait (Python's
** default of 0); poll(nil) waits for ever; a negative timeout is 0. */
static int conn_poll (lua_State *L) {
  conn *c = checkconn(L, 1);
  int fd = rfd_of(L, c);
  double timeout = 0;
  if (lua_gettop(L) >= 2)
    timeout = lua_isnil(L, 2) ? -1 : luaL_checknumber(L, 2);
  if (timeout < 0 && !lua_isnil(L, 2)) timeout = 0;
  lua_pushboolean(L, poll_fd(L, fd, timeout));
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
    luaL_getmetatable(L, CONN_MT);
    lua_getfield(L, -1, "methods");
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
    return raise_errno(L, "socketpair", errno);
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
  {"_fds", conn_fds},
  {NULL, NULL}
};

/* }================================================================== */


/*
** {==================================================================
** Process-shared synchronisation: a mutex and a condition variable in
** shared memory guard a small state. Kinds: a semaphore (Lock is one with
** maximum 1), a recursive lock, an event, a condition (tickets), a barrier.
** ===================================================================
*/

enum { K_SEM, K_RLOCK, K_EVENT, K_COND, K_BARRIER };

/* A semaphore counts up to Linux's SEM_VALUE_MAX, as Python's does. */
#define SEM_MAX 2147483647L

typedef struct shsync {
  pthread_mutex_t m;
  pthread_cond_t c;
  int kind;
  long value, maxvalue;        /* semaphore; event flag in value */
  pid_t opid;                  /* owner (locks) */
  pid_t otid;
  long count;                  /* rlock recursion */
  unsigned long tickets, wakeup;   /* condition */
  long parties, nwaiting, broken;  /* barrier */
  unsigned long gen;
} shsync;

typedef struct syncref { shsync *s; int fd; } syncref;


/* Shared memory on a memfd (kept open in *fd, close-on-exec): fork keeps
** the mapping, and a spawned child maps the same memfd, passed to it. */
static void *shmalloc (lua_State *L, size_t size, int *fd) {
  void *p;
  int e;
  *fd = memfd_create("gilua-shared", MFD_CLOEXEC);
  if (*fd < 0) raise_errno(L, "memfd_create", errno);
  if (ftruncate(*fd, (off_t)size) != 0) {
    e = errno; close(*fd); *fd = -1;
    raise_errno(L, "ftruncate", e);
  }
  p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
  if (p == MAP_FAILED) {
    e = errno; close(*fd); *fd = -1;
    raise_errno(L, "mmap", e);
  }
  return p;
}


/* Maps a memfd passed by the parent; it must hold at least 'size' bytes. */
static void *shmmap (lua_State *L, int fd, size_t size) {
  struct stat st;
  void *p;
  if (fstat(fd, &st) != 0) raise_errno(L, "fstat", errno);
  if ((size_t)st.st_size < size)
    gilua_raise(L, "ValueError", "shared memory block too small");
  p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) raise_errno(L, "mmap", errno);
  return p;
}


static void sync_init (shsync *s, int kind) {
  pthread_mutexattr_t ma;
  pthread_condattr_t ca;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&s->m, &ma);
  pthread_mutexattr_destroy(&ma);
  pthread_condattr_init(&ca);
  pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->c, &ca);
  pthread_condattr_destroy(&ca);
  s->kind = kind;
}


/* The short internal mutex; a holder that died leaves it consistent
** (it only guards a few fields, which are always whole). */
static void slock (shsync *s) {
  if (pthread_mutex_lock(&s->m) == EOWNERDEAD) pthread_mutex_consistent(&s->m);
}

static void sunlock (shsync *s) {
  pthread_mutex_unlock(&s->m);
}


/* Waits on s->c (s->m held): 1 woken, 0 timed out, -1 Ctrl-C. */
static int swait (shsync *s, const struct timespec *deadline) {
  int r = gilua_condwait(&s->c, &s->m, deadline);
  if (r == EOWNERDEAD) { pthread_mutex_consistent(&s->m); return 1; }
  if (r == EINTR) return -1;
  return r != ETIMEDOUT;
}


static shsync *checksync (lua_State *L) {
  syncref *r = luaL_checkudata(L, 1, SYNC_MT);
  return r->s;
}


static pid_t mytid (void) {
  static __thread pid_t tid;
  static __thread pid_t forpid;
  pid_t pid = getpid();
  if (tid == 0 || forpid != pid) {
    tid = (pid_t)syscall(SYS_gettid);
    forpid = pid;
  }
  return tid;
}


/* semlock(kind, value, maxvalue): kind "sem", "rlock", "event". */
static int l_semlock (lua_State *L) {
  static const char *const kinds[] = {"sem", "rlock", "event", NULL};
  int kind = luaL_checkoption(L, 1, NULL, kinds);
  long value = (long)luaL_optinteger(L, 2, 1);
  long maxvalue = (long)luaL_optinteger(L, 3, -1);
  syncref *r = lua_newuserdatauv(L, sizeof *r, 0);
  r->s = NULL;
  r->fd = -1;
  luaL_setmetatable(L, SYNC_MT);
  r->s = shmalloc(L, sizeof(shsync), &r->fd);
  sync_init(r->s, kind);
  r->s->value = value;
  r->s->maxvalue = maxvalue;
  return 1;
}


/* semlock_from(fd): a lock passed to a spawned child */
static int l_semlock_from (lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  syncref *r = lua_newuserdatauv(L, sizeof *r, 0);
  r->s = NULL;
  r->fd = -1;
  luaL_setmetatable(L, SYNC_MT);
  r->s = shmmap(L, fd, sizeof(shsync));
  r->fd = fd;
  return 1;
}


static int sync_gc (lua_State *L) {
  syncref *r = luaL_checkudata(L, 1, SYNC_MT);
  if (r->s) munmap(r->s, sizeof(shsync));
  r->s = NULL;
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
  return 0;
}


static int sync_fd (lua_State *L) {
  syncref *r = luaL_checkudata(L, 1, SYNC_MT);
  lua_pushinteger(L, r->fd);
  return 1;
}


/* acquire(blocking, timeout) -> true, or false if not acquired */
static int sync_acquire (lua_State *L) {
  shsync *s = checksync(L);
  gilua_args a;
  int block, got = 0, intr = 0;
  double timeout;
  struct timespec ts, *dl = NULL;
  pid_t pid = getpid(), tid = mytid();
  gilua_args_init(&a, L, 2);
  block = gilua_arg_bool(&a, 0, "blocking", 1);
  timeout = gilua_arg_timeout(&a, 1, "timeout");
  if (!block) timeout = 0;
  if (timeout >= 0) { gilua_deadline(&ts, timeout); dl = &ts; }
  GILUA_BEGIN_ALLOW_THREADS(L)
    slock(s);
    if (s->kind == K_RLOCK) {
      if (s->count > 0 && s->opid == pid && s->otid == tid) { s->count++; got = 1; }
      else {
        for (;;) {
          int w;
          if (s->count == 0) { s->count = 1; got = 1; break; }
          if (timeout == 0) break;
          w = swait(s, dl);
          if (w == 0) break;
          if (w < 0) { intr = 1; break; }
        }
      }
    }
    else {
      for (;;) {
        int w;
        if (s->value > 0) { s->value--; got = 1; break; }
        if (timeout == 0) break;
        w = swait(s, dl);
        if (w == 0) break;
        if (w < 0) { intr = 1; break; }
      }
    }
    if (got) { s->opid = pid; s->otid = tid; }
    sunlock(s);
  GILUA_END_ALLOW_THREADS(L)
  if (intr) gilua_checkinterrupt(L);
  lua_pushboolean(L, got);
  return 1;
}


static int sync_release (lua_State *L) {
  shsync *s = checksync(L);
  const char *err = NULL, *cls = "ValueError";
  slock(s);
  if (s->kind == K_RLOCK) {
    if (s->count == 0 || s->opid != getpid() || s->otid != mytid()) {
      err = "attempt to release recursive lock not owned by thread";
      cls = "AssertionError";
    }
    else if (--s->count == 0) pthread_cond_signal(&s->c);
  }
  else if ((s->maxvalue > 0 && s->value >= s->maxvalue) || s->value >= SEM_MAX)
    err = "semaphore or lock released too many times";
  else {
    s->value++;
    pthread_cond_signal(&s->c);
  }
  sunlock(s);
  if (err) return gilua_raise(L, cls, "%s", err);
  return 0;
}


/* RLock: count held by the calling thread; Lock/Semaphore: the value. */
static int sync_count (lua_State *L) {
  shsync *s = checksync(L);
  long n;
  slock(s);
  if (s->kind == K_RLOCK)
    n = (s->opid == getpid() && s->otid == mytid()) ? s->count : 0;
  else n = s->value;
  sunlock(s);
  lua_pushinteger(L, n);
  return 1;
}


static int sync_is_mine (lua_State *L) {
  shsync *s = checksync(L);
  int mine;
  slock(s);
  mine = s->opid == getpid() && s->otid == mytid() &&
         (s->kind == K_RLOCK ? s->count > 0 : s->value == 0);
  sunlock(s);
  lua_pushboolean(L, mine);
  return 1;
}


static int sync_locked (lua_State *L) {
  shsync *s = checksync(L);
  int l;
  slock(s);
  l = s->kind == K_RLOCK ? s->count > 0 : s->value == 0;
  sunlock(s);
  lua_pushboolean(L, l);
  return 1;
}


/* Events: value is the flag. */
static int ev_set (lua_State *L) {
  shsync *s = checksync(L);
  slock(s);
  s->value = 1;
  pthread_cond_broadcast(&s->c);
  sunlock(s);
  return 0;
}


static int ev_clear (lua_State *L) {
  shsync *s = checksync(L);
  slock(s);
  s->value = 0;
  sunlock(s);
  return 0;
}


static int ev_is_set (lua_State *L) {
  shsync *s = checksync(L);
  int v;
  slock(s);
  v = s->value != 0;
  sunlock(s);
  lua_pushboolean(L, v);
  return 1;
}


static int ev_wait (lua_State *L) {
  shsync *s = checksync(L);
  double timeout = luaL_optnumber(L, 2, -1);
  struct timespec ts, *dl = NULL;
  int v, intr = 0;
  if (!lua_isnoneornil(L, 2) && timeout < 0) timeout = 0;
  if (timeout >= 0) { gilua_deadline(&ts, timeout); dl = &ts; }
  GILUA_BEGIN_ALLOW_THREADS(L)
    slock(s);
    while (s->value == 0) {
      int w = swait(s, dl);
      if (w == 0) break;
      if (w < 0) { intr = 1; break; }
    }
    v = s->value != 0;
    sunlock(s);
  GILUA_END_ALLOW_THREADS(L)
  if (intr) gilua_checkinterrupt(L);
  lua_pushboolean(L, v);
  return 1;
}


static const luaL_Reg sync_methods[] = {
  {"acquire", sync_acquire},
  {"release", sync_release},
  {"_fd", sync_fd},
  {"_count", sync_count},
  {"_is_mine", sync_is_mine},
  {"locked", sync_locked},
  {"set", ev_set},
  {"clear", ev_clear},
  {"is_set", ev_is_set},
  {"wait", ev_wait},
  {NULL, NULL}
};

/* }================================================================== */


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
    m->p = shmmap(L, fd, m->size);
    m->fd = fd;
  }
  else m->p = shmalloc(L, m->size, &m->fd);
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
** Queues: a socket, locks and counters in shared memory, and per process
** a feeder thread (plain C, no Lua) that writes the frames put() queued,
** so put() never blocks on a full socket (Python's design). Items are
** serialized by put() itself, so later changes to an item do not travel.
** ===================================================================
*/

#define QUEUE_MT "_multiprocessing.Queue"

typedef struct qshared {
  shsync s;                    /* count, maxsize, unfinished; not full / done */
  pthread_mutex_t rlock, wlock;
  long count, maxsize, unfinished;
} qshared;

struct qlocal {
  qshared *sh;
  int rfd, wfd;
  int shfd;                    /* memfd of 'sh', for spawned children */
  pthread_mutex_t m;
  pthread_cond_t c, drained;
  char *pend;                  /* frames not written yet */
  size_t npend, cappend;
  int feeder, running, writing, waiting, closed, ignore, refs;
  struct qlocal *next;         /* all queues of this process (under the GIL) */
};

static qlocal *allqueues;


static void q_free (qlocal *q) {
  if (q->rfd >= 0) close(q->rfd);
  if (q->wfd >= 0) close(q->wfd);
  if (q->shfd >= 0) close(q->shfd);
  munmap(q->sh, sizeof *q->sh);
  free(q->pend);
  pthread_mutex_destroy(&q->m);
  pthread_cond_destroy(&q->c);
  pthread_cond_destroy(&q->drained);
  free(q);
}


static void q_unlink (qlocal *q) {
  qlocal **p;
  for (p = &allqueues; *p; p = &(*p)->next)
    if (*p == q) { *p = q->next; break; }
}


static void robust_lock (pthread_mutex_t *m) {
  if (pthread_mutex_lock(m) == EOWNERDEAD) pthread_mutex_consistent(m);
}


static void *feeder (void *ud) {
  qlocal *q = ud;
  char *buf = NULL;
  size_t cap = 0, n;
  int last;
  pthread_mutex_lock(&q->m);
  q->running = 1;
  pthread_cond_broadcast(&q->drained);
  for (;;) {
    while (q->npend == 0 && !q->closed) {
      q->waiting = 1;
      pthread_cond_wait(&q->c, &q->m);
      q->waiting = 0;
    }
    if (q->npend == 0) break;
    {  /* take the pending frames, leave our empty buffer in their place */
      char *t = q->pend;
      size_t tc = q->cappend;
      n = q->npend;
      q->pend = buf; q->cappend = cap; q->npend = 0;
      buf = t; cap = tc;
    }
    q->writing = 1;
    pthread_mutex_unlock(&q->m);
    robust_lock(&q->sh->wlock);
    write_all(q->wfd, buf, n);  /* a reader gone: the items are lost */
    pthread_mutex_unlock(&q->sh->wlock);
    pthread_mutex_lock(&q->m);
    q->writing = 0;
    pthread_cond_broadcast(&q->drained);
  }
  free(buf);
  q->feeder = q->running = 0;
  pthread_cond_broadcast(&q->drained);
  last = --q->refs == 0;
  pthread_mutex_unlock(&q->m);
  if (last) q_free(q);
  return NULL;
}


/* In a new child: the feeders stayed in the parent, and so did their
** pending frames (the parent writes them). */
static void feeders_after_fork (void) {
  qlocal *q;
  for (q = allqueues; q; q = q->next) {
    pthread_mutex_init(&q->m, NULL);
    gilua_cond_init(&q->c);
    gilua_cond_init(&q->drained);
    q->pend = NULL;
    q->npend = q->cappend = 0;
    q->feeder = q->running = q->writing = q->waiting = 0;
    q->refs = 1;
  }
}


/* Waits, without the GIL, until the feeder has written what it holds;
** EINTR if Ctrl-C stopped the wait (main thread). */
static int q_drain (qlocal *q) {
  int rc = 0;
  pthread_mutex_lock(&q->m);
  while (rc != EINTR && !q->ignore && q->feeder && (q->npend > 0 || q->writing))
    rc = gilua_condwait(&q->drained, &q->m, NULL);
  pthread_mutex_unlock(&q->m);
  return rc;
}


/* The live queues, each held (refs) so that a collection in another thread
** cannot free one while it is drained without the GIL. Call with the GIL,
** which guards 'allqueues'. */
static qlocal **feeders_hold (int *n) {
  qlocal *q, **qs;
  int k = 0;
  for (q = allqueues; q; q = q->next) k++;
  *n = 0;
  if (k == 0 || (qs = malloc((size_t)k * sizeof *qs)) == NULL) return NULL;
  for (q = allqueues; q; q = q->next) {
    pthread_mutex_lock(&q->m);
    q->refs++;
    pthread_mutex_unlock(&q->m);
    qs[(*n)++] = q;
  }
  return qs;
}


/* Before a process exits: what its feeders hold reaches the sockets.
** Without the GIL. */
static int feeders_flush (qlocal **qs, int n) {
  int i;
  for (i = 0; i < n; i++)
    if (q_drain(qs[i]) == EINTR) return EINTR;
  return 0;
}


static void feeders_unhold (qlocal **qs, int n) {
  int i;
  for (i = 0; i < n; i++) {
    qlocal *q = qs[i];
    int last;
    pthread_mutex_lock(&q->m);
    last = --q->refs == 0;
    pthread_mutex_unlock(&q->m);
    if (last) q_free(q);
  }
  free(qs);
}


static int l_flush_feeders (lua_State *L) {
  int n;
  int rc;
  qlocal **qs = feeders_hold(&n);
  GILUA_BEGIN_ALLOW_THREADS(L)
    rc = feeders_flush(qs, n);
  GILUA_END_ALLOW_THREADS(L)
  feeders_unhold(qs, n);
  if (rc == EINTR) gilua_checkinterrupt(L);
  return 0;
}


static qlocal *checkq (lua_State *L) {
  qlocal **u = luaL_checkudata(L, 1, QUEUE_MT);
  if (*u == NULL) gilua_raise(L, "ValueError", "Queue is closed");
  return *u;
}


/* A queue's local side on descriptors: the socket's two ends and the
** memfd of the shared block (the block is created when 'create'). */
static int q_make (lua_State *L, int rfd, int wfd, int shfd, int create,
                   lua_Integer maxsize) {
  qlocal **u = lua_newuserdatauv(L, sizeof *u, 0);
  qlocal *q;
  *u = NULL;
  luaL_setmetatable(L, QUEUE_MT);
  q = calloc(1, sizeof *q);
  if (q == NULL) return luaL_error(L, "not enough memory");
  q->sh = mmap(NULL, sizeof *q->sh, PROT_READ | PROT_WRITE, MAP_SHARED, shfd, 0);
  if (q->sh == MAP_FAILED) {
    int e = errno;
    free(q);
    return raise_errno(L, "mmap", e);
  }
  if (create) {
    pthread_mutexattr_t ma;
    sync_init(&q->sh->s, K_SEM);
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&q->sh->rlock, &ma);
    pthread_mutex_init(&q->sh->wlock, &ma);
    pthread_mutexattr_destroy(&ma);
    q->sh->maxsize = maxsize > 0 ? (long)maxsize : 0;
  }
  q->rfd = rfd;
  q->wfd = wfd;
  q->shfd = shfd;
  pthread_mutex_init(&q->m, NULL);
  gilua_cond_init(&q->c);
  gilua_cond_init(&q->drained);
  q->refs = 1;
  q->next = allqueues;
  allqueues = q;
  *u = q;
  return 1;
}


/* queue(maxsize) */
static int l_queue (lua_State *L) {
  lua_Integer maxsize = luaL_optinteger(L, 1, 0);
  int sv[2], shfd;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return raise_errno(L, "socketpair", errno);
  shfd = memfd_create("gilua-queue", MFD_CLOEXEC);
  if (shfd < 0 || ftruncate(shfd, sizeof(qshared)) != 0) {
    int e = errno;
    close(sv[0]); close(sv[1]);
    if (shfd >= 0) close(shfd);
    return raise_errno(L, "memfd_create", e);
  }
  shutdown(sv[0], SHUT_WR);
  shutdown(sv[1], SHUT_RD);
  return q_make(L, sv[0], sv[1], shfd, 1, maxsize);
}


/* queue_from(rfd, wfd, shfd): a queue passed to a spawned child */
static int l_queue_from (lua_State *L) {
  return q_make(L, (int)luaL_checkinteger(L, 1), (int)luaL_checkinteger(L, 2),
                (int)luaL_checkinteger(L, 3), 0, 0);
}


static int q_fds (lua_State *L);


static int q_gc (lua_State *L) {
  qlocal **u = luaL_checkudata(L, 1, QUEUE_MT);
  qlocal *q = *u;
  int last;
  if (q == NULL) return 0;
  *u = NULL;
  q_unlink(q);
  pthread_mutex_lock(&q->m);
  q->closed = 1;
  pthread_cond_signal(&q->c);
  last = --q->refs == 0;
  pthread_mutex_unlock(&q->m);
  if (last) q_free(q);
  return 0;
}


/* put(item, block, timeout) */
static int q_put (lua_State *L) {
  qlocal *q = checkq(L);
  qshared *sh = q->sh;
  int block = lua_isnoneornil(L, 3) ? 1 : lua_toboolean(L, 3);
  double timeout = luaL_optnumber(L, 4, -1);
  struct timespec ts, *dl = NULL;
  int ok = 1, intr = 0, err = 0;
  mp_buf *b;
  char h[12];
  size_t k;
  if (q->closed) return gilua_raise(L, "ValueError", "Queue is closed");
  if (!lua_isnoneornil(L, 4) && timeout < 0)
    return gilua_raise(L, "ValueError", "'timeout' must be a non-negative number");
  lua_settop(L, 2);
  b = mp_newbuf(L);
  mp_bufreserve(L, b, 4);
  b->n = 4;
  mp_encode(L, 2, b);
  k = header(h, b->n - 4);
  if (k != 4) {
    mp_bufreserve(L, b, 8);
    memmove(b->p + 12, b->p + 4, b->n - 4);
    b->n += 8;
  }
  memcpy(b->p, h, k);
  if (!block) timeout = 0;
  if (timeout >= 0) { gilua_deadline(&ts, timeout); dl = &ts; }
  GILUA_BEGIN_ALLOW_THREADS(L)
    slock(&sh->s);
    while (sh->maxsize > 0 && sh->count >= sh->maxsize) {
      int w;
      if (timeout == 0) { ok = 0; break; }
      w = swait(&sh->s, dl);
      if (w == 0) { ok = 0; break; }
      if (w < 0) { ok = 0; intr = 1; break; }
    }
    if (ok) { sh->count++; sh->unfinished++; }
    sunlock(&sh->s);
    if (ok) {
      pthread_mutex_lock(&q->m);
      if (q->npend + b->n > q->cappend) {
        size_t cap = q->cappend ? q->cappend : 4096;
        char *p;
        while (cap < q->npend + b->n) cap *= 2;
        p = realloc(q->pend, cap);
        if (p == NULL) err = ENOMEM;
        else { q->pend = p; q->cappend = cap; }
      }
      if (!err) {
        memcpy(q->pend + q->npend, b->p, b->n);
        q->npend += b->n;
        if (!q->feeder) {
          pthread_t t;
          pthread_attr_t at;
          pthread_attr_init(&at);
          pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
          if (pthread_create(&t, &at, feeder, q) == 0) {
            q->feeder = 1;
            q->refs++;
            /* Until it runs, the new thread may be inside the C library's
            ** (or a sanitizer's) thread set-up: a fork then could leave a
            ** lock held in the child. It is a one-time wait. */
            while (!q->running) pthread_cond_wait(&q->drained, &q->m);
          }
          else err = EAGAIN;
          pthread_attr_destroy(&at);
        }
        else if (q->waiting) pthread_cond_signal(&q->c);
      }
      pthread_mutex_unlock(&q->m);
    }
  GILUA_END_ALLOW_THREADS(L)
  if (intr) gilua_checkinterrupt(L);
  if (err) return raise_errno(L, "Queue.put", err);
  if (!ok) return gilua_raise(L, "queue.Full", NULL);
  return 0;
}


/* get(block, timeout) */
static int q_get (lua_State *L) {
  qlocal *q = checkq(L);
  qshared *sh = q->sh;
  int block = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
  double timeout = luaL_optnumber(L, 3, -1), deadline;
  int got = 0, r = 0, fd = q->rfd;
  mp_buf *b;
  if (fd < 0) return gilua_raise(L, "ValueError", "Queue is closed");
  if (!lua_isnoneornil(L, 3) && timeout < 0)
    return gilua_raise(L, "ValueError", "'timeout' must be a non-negative number");
  if (!block) timeout = 0;
  deadline = timeout < 0 ? -1 : gilua_monotonic() + timeout;
  lua_settop(L, 1);
  b = mp_newbuf(L);
  GILUA_BEGIN_ALLOW_THREADS(L)
    int lr;
    if (timeout < 0) lr = pthread_mutex_lock(&sh->rlock);
    else if (timeout == 0) lr = pthread_mutex_trylock(&sh->rlock);
    else {  /* timedlock counts in CLOCK_REALTIME */
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_sec += (time_t)timeout;
      ts.tv_nsec += (long)((timeout - (double)(time_t)timeout) * 1e9);
      if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
      lr = pthread_mutex_timedlock(&sh->rlock, &ts);
    }
    if (lr == EOWNERDEAD) { pthread_mutex_consistent(&sh->rlock); lr = 0; }
    if (lr == 0) {
      struct pollfd p;
      int ready = 1;
      if (timeout >= 0) {
        p.fd = fd;
        p.events = POLLIN;
        do ready = poll(&p, 1, ms_left(deadline)); while (ready < 0 && errno == EINTR);
      }
      if (ready > 0) {
        r = read_frame(fd, b, SIZE_MAX);
        got = r == 0;
      }
      pthread_mutex_unlock(&sh->rlock);
      if (got) {
        slock(&sh->s);
        sh->count--;
        pthread_cond_broadcast(&sh->s.c);
        sunlock(&sh->s);
      }
    }
  GILUA_END_ALLOW_THREADS(L)
  if (r != 0) return read_error(L, r);
  if (!got) return gilua_raise(L, "queue.Empty", NULL);
  mp_decode(L, b->p, b->n);
  return 1;
}


static int q_qsize (lua_State *L) {
  qlocal *q = checkq(L);
  long n;
  slock(&q->sh->s);
  n = q->sh->count;
  sunlock(&q->sh->s);
  lua_pushinteger(L, n);
  return 1;
}


static int q_empty (lua_State *L) {
  qlocal *q = checkq(L);
  if (q->rfd < 0) return gilua_raise(L, "ValueError", "Queue is closed");
  lua_pushboolean(L, !poll_fd(L, q->rfd, 0));
  return 1;
}


static int q_full (lua_State *L) {
  qlocal *q = checkq(L);
  int f;
  slock(&q->sh->s);
  f = q->sh->maxsize > 0 && q->sh->count >= q->sh->maxsize;
  sunlock(&q->sh->s);
  lua_pushboolean(L, f);
  return 1;
}


/* close(): no more puts from this process; the feeder ends once drained. */
static int q_close (lua_State *L) {
  qlocal *q = checkq(L);
  pthread_mutex_lock(&q->m);
  q->closed = 1;
  pthread_cond_signal(&q->c);
  pthread_mutex_unlock(&q->m);
  return 0;
}


static int q_join_thread (lua_State *L) {
  qlocal *q = checkq(L);
  int rc = 0;
  GILUA_BEGIN_ALLOW_THREADS(L)
    pthread_mutex_lock(&q->m);
    while (rc != EINTR && q->feeder && (q->npend > 0 || q->writing || q->closed))
      rc = gilua_condwait(&q->drained, &q->m, NULL);
    pthread_mutex_unlock(&q->m);
  GILUA_END_ALLOW_THREADS(L)
  if (rc == EINTR) gilua_checkinterrupt(L);
  return 0;
}


static int q_cancel_join_thread (lua_State *L) {
  qlocal *q = checkq(L);
  pthread_mutex_lock(&q->m);
  q->ignore = 1;
  pthread_mutex_unlock(&q->m);
  return 0;
}


static int q_task_done (lua_State *L) {
  qlocal *q = checkq(L);
  qshared *sh = q->sh;
  int bad = 0;
  slock(&sh->s);
  if (sh->unfinished <= 0) bad = 1;
  else if (--sh->unfinished == 0) pthread_cond_broadcast(&sh->s.c);
  sunlock(&sh->s);
  if (bad) return gilua_raise(L, "ValueError", "task_done() called too many times");
  return 0;
}


static int q_join (lua_State *L) {
  qlocal *q = checkq(L);
  qshared *sh = q->sh;
  int intr = 0;
  GILUA_BEGIN_ALLOW_THREADS(L)
    slock(&sh->s);
    while (sh->unfinished > 0)
      if (swait(&sh->s, NULL) < 0) { intr = 1; break; }
    sunlock(&sh->s);
  GILUA_END_ALLOW_THREADS(L)
  if (intr) gilua_checkinterrupt(L);
  return 0;
}


static int q_fds (lua_State *L) {
  qlocal *q = checkq(L);
  lua_pushinteger(L, q->rfd);
  lua_pushinteger(L, q->wfd);
  lua_pushinteger(L, q->shfd);
  return 3;
}


static int q_fileno (lua_State *L) {
  qlocal *q = checkq(L);
  lua_pushinteger(L, q->rfd);
  return 1;
}


static const luaL_Reg q_methods[] = {
  {"put", q_put},
  {"get", q_get},
  {"qsize", q_qsize},
  {"empty", q_empty},
  {"full", q_full},
  {"close", q_close},
  {"join_thread", q_join_thread},
  {"cancel_join_thread", q_cancel_join_thread},
  {"task_done", q_task_done},
  {"join", q_join},
  {"_reader", q_fileno},
  {"_fds", q_fds},
  {NULL, NULL}
};

/* }================================================================== */


/*
** {==================================================================
** Named shared memory (shared_memory.SharedMemory): shm_open + mmap.
** The buffer is indexed by byte, 1..size, as Lua strings are.
** ===================================================================
*/

#define BUF_MT "_multiprocessing.SharedBuffer"

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
  if (fd < 0) {
    e = errno;
    if (e == ENOENT)
      return gilua_raise(L, "FileNotFoundError", "[Errno 2] No such file or directory: '%s'", name);
    if (e == EEXIST)
      return gilua_raise(L, "FileExistsError", "[Errno 17] File exists: '%s'", name);
    return raise_errno(L, "shm_open", e);
  }
  if (create && ftruncate(fd, (off_t)size) != 0) {
    e = errno;
    close(fd);
    shm_unlink(name);
    return raise_errno(L, "ftruncate", e);
  }
  if (fstat(fd, &st) != 0) { e = errno; close(fd); return raise_errno(L, "fstat", e); }
  if (st.st_size > 0) {
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {   /* a block we made must not stay behind */
      e = errno;
      close(fd);
      if (create) shm_unlink(name);
      return raise_errno(L, "mmap", e);
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
  if (shm_unlink(name) != 0) {
    if (errno == ENOENT)
      return gilua_raise(L, "FileNotFoundError", "[Errno 2] No such file or directory: '%s'", name);
    return raise_errno(L, "shm_unlink", errno);
  }
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
  luaL_getmetatable(L, BUF_MT);
  lua_getfield(L, -1, "methods");
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


/*
** {==================================================================
** Unix sockets for the manager: a private directory, a listening
** socket (mode 0600) and connections on it
** ===================================================================
*/

static int fill_addr (lua_State *L, struct sockaddr_un *a, const char *path) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof a->sun_path)
    return gilua_raise(L, "OSError", "socket path too long: %s", path);
  strcpy(a->sun_path, path);
  return 0;
}


/* mkdtemp(prefix) -> a new directory only the user can enter */
static int l_mkdtemp (lua_State *L) {
  const char *prefix = luaL_optstring(L, 1, "/tmp/gilua-mp-");
  char path[256];
  snprintf(path, sizeof path, "%sXXXXXX", prefix);
  if (mkdtemp(path) == NULL) return raise_errno(L, "mkdtemp", errno);
  lua_pushstring(L, path);
  return 1;
}


static int l_listen (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct sockaddr_un a;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return raise_errno(L, "socket", errno);
  fill_addr(L, &a, path);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || chmod(path, 0600) != 0
      || listen(fd, 64) != 0) {
    int e = errno;
    close(fd);
    return raise_errno(L, "listen", e);
  }
  lua_pushinteger(L, fd);
  return 1;
}


static int l_accept (lua_State *L) {
  int lfd = (int)luaL_checkinteger(L, 1), fd;
  GILUA_BEGIN_ALLOW_THREADS(L)
    do fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC); while (fd < 0 && errno == EINTR);
  GILUA_END_ALLOW_THREADS(L)
  if (fd < 0) return raise_errno(L, "accept", errno);
  newconn(L, fd, fd);
  return 1;
}


static int l_connect (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct sockaddr_un a;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), r;
  if (fd < 0) return raise_errno(L, "socket", errno);
  fill_addr(L, &a, path);
  GILUA_BEGIN_ALLOW_THREADS(L)
    do r = connect(fd, (struct sockaddr *)&a, sizeof a); while (r < 0 && errno == EINTR);
  GILUA_END_ALLOW_THREADS(L)
  if (r != 0) {
    int e = errno;
    close(fd);
    return raise_errno(L, "connect", e);
  }
  newconn(L, fd, fd);
  return 1;
}


static int l_random (lua_State *L) {
  int n = (int)luaL_optinteger(L, 1, 32), fd, got = 0;
  char buf[256];
  if (n < 1 || n > (int)sizeof buf) return luaL_argerror(L, 1, "1 to 256");
  fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) { got = read_all(fd, buf, (size_t)n) == 0; close(fd); }
  if (!got) return raise_errno(L, "urandom", errno);
  lua_pushlstring(L, buf, (size_t)n);
  return 1;
}


static int l_remove (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_pushboolean(L, remove(path) == 0);
  return 1;
}

/* }================================================================== */


static void newmeta (lua_State *L, const char *name, const luaL_Reg *methods,
                     lua_CFunction gc) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "methods");
  lua_setfield(L, -2, "__index");
  if (gc) {
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
  }
}


static const luaL_Reg funcs[] = {
  {"fork", l_fork},
  {"_exit", l_exit},
  {"waitpid", l_waitpid},
  {"kill", l_kill},
  {"pidfd", l_pidfd},
  {"close", l_close},
  {"wait", l_wait},
  {"cpu_count", l_cpu_count},
  {"inheritable", l_inheritable},
  {"executable", l_executable},
  {"spawnv", l_spawnv},
  {"Pipe", l_pipe},
  {"Connection", l_conn},
  {"semlock", l_semlock},
  {"semlock_from", l_semlock_from},
  {"rawshm", l_rawshm},
  {"queue", l_queue},
  {"queue_from", l_queue_from},
  {"flush_feeders", l_flush_feeders},
  {"mkdtemp", l_mkdtemp},
  {"listen", l_listen},
  {"accept", l_accept},
  {"connect", l_connect},
  {"random", l_random},
  {"remove", l_remove},
  {"shm_open", l_shm_open},
  {"shm_unlink", l_shm_unlink},
  {NULL, NULL}
};


int luaopen_gilua_multiprocessing (lua_State *L) {
  newmeta(L, CONN_MT, conn_methods, conn_close);
  lua_pushcfunction(L, conn_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, conn_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushcfunction(L, conn_close);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
  newmeta(L, SYNC_MT, sync_methods, sync_gc);
  lua_pop(L, 1);
  newmeta(L, SHM_MT, shm_methods, shm_gc);
  lua_pop(L, 1);
  newmeta(L, QUEUE_MT, q_methods, q_gc);
  lua_pop(L, 1);
  newmeta(L, BUF_MT, buf_methods, buf_release);
  lua_pushcfunction(L, buf_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, buf_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, buf_len);
  lua_setfield(L, -2, "__len");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  mp_open_serialize(L);
  mp_open_auth(L);
  lua_pushinteger(L, SIGTERM);
  lua_setfield(L, -2, "SIGTERM");
  lua_pushinteger(L, SIGKILL);
  lua_setfield(L, -2, "SIGKILL");
  return 1;
}
