/*
** aio.c: `_asyncio`, the C side of asyncio: the poller under the event
** loop and non-blocking TCP sockets. asyncio.lua builds the loop, tasks
** and streams on it.
**
** Choices:
** - epoll, level-triggered, with the GIL released around epoll_wait only:
**   the loop's own Lua code keeps the GIL, other OS threads run while it
**   waits for I/O or its next timer. The timeout is rounded up to the
**   millisecond, so the loop never wakes before a timer is due.
** - An eventfd in the epoll set wakes the loop from other threads
**   (call_soon_threadsafe): poller:wakeup() writes to it; poll() drains it
**   and says so instead of reporting it as an event.
** - Sockets are plain descriptors (integers) made non-blocking and
**   close-on-exec at birth; recv/send/accept return nil when the call
**   would block, and the loop waits for readiness. Name resolution
**   (getaddrinfo) runs with the GIL released.
** - Errors are OSError objects of Python's subclass for the errno
**   (ConnectionRefusedError, BrokenPipeError, ...). Sends use
**   MSG_NOSIGNAL: a closed peer is an error, never SIGPIPE.
*/
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "gilua_vm.h"

#define POLLER_MT "_asyncio.poller"
#define MAXEVENTS 256
#define READ_BIT 1
#define WRITE_BIT 2
#define RECV_MAX 16384          /* bytes read by one recv() */


/*
** {======================================================
** Poller
** =======================================================
*/

typedef struct Poller {
  int epfd;                     /* -1 once closed */
  int wakefd;                   /* eventfd */
  int nfds;                     /* descriptors watched, wakefd aside */
  struct epoll_event ev[MAXEVENTS];
} Poller;


static Poller *topoller (lua_State *L) {
  Poller *p = (Poller *)luaL_checkudata(L, 1, POLLER_MT);
  if (p->epfd < 0) luaL_error(L, "poller is closed");
  return p;
}


static int l_poller (lua_State *L) {
  Poller *p = (Poller *)lua_newuserdatauv(L, sizeof(Poller), 0);
  struct epoll_event ev;
  p->epfd = p->wakefd = -1;
  p->nfds = 0;
  luaL_setmetatable(L, POLLER_MT);
  p->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (p->epfd < 0) return gilua_oserror(L, errno, "epoll_create1", NULL);
  p->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (p->wakefd < 0) {
    int en = errno;
    close(p->epfd);
    p->epfd = -1;
    return gilua_oserror(L, en, "epoll_create1", NULL);
  }
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.fd = p->wakefd;
  epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->wakefd, &ev);
  return 1;
}


static unsigned int tomask (int bits) {
  unsigned int m = 0;
  if (bits & READ_BIT) m |= EPOLLIN;
  if (bits & WRITE_BIT) m |= EPOLLOUT;
  return m;
}


/* poller:modify(fd, old, new): the events watched on fd go from the
** bits 'old' to 'new' (1 read, 2 write; 0 none). */
static int p_modify (lua_State *L) {
  Poller *p = topoller(L);
  int fd = (int)luaL_checkinteger(L, 2);
  int old = (int)luaL_checkinteger(L, 3);
  int new = (int)luaL_checkinteger(L, 4);
  struct epoll_event ev;
  int op;
  memset(&ev, 0, sizeof ev);
  ev.events = tomask(new);
  ev.data.fd = fd;
  if (old == 0 && new == 0) return 0;
  op = old == 0 ? EPOLL_CTL_ADD : new == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
  if (epoll_ctl(p->epfd, op, fd, &ev) < 0) {
    if (op == EPOLL_CTL_DEL && (errno == EBADF || errno == ENOENT)) {
      p->nfds--;
      return 0;
    }
    return gilua_oserror(L, errno, "epoll_ctl", NULL);
  }
  p->nfds += (op == EPOLL_CTL_ADD) - (op == EPOLL_CTL_DEL);
  return 0;
}


/* epoll_wait for gilua_waitwith: SIGINT is let in only while it waits. */
static int epoll_ms (void *ud, int ms, const sigset_t *mask) {
  Poller *p = (Poller *)ud;
  return epoll_pwait(p->epfd, p->ev, MAXEVENTS, ms, mask);
}


/*
** poller:poll(timeout, out) -> n, woken: waits (GIL released) at most
** 'timeout' seconds (negative: no limit) and puts the ready descriptors
** in out[1..2n] as fd, bits pairs. 'woken' is true when wakeup() was
** called (the eventfd is drained, not listed).
*/
static int p_poll (lua_State *L) {
  Poller *p = topoller(L);
  double timeout = luaL_checknumber(L, 2);
  int n, i, k = 0, woken = 0, en = 0;
  luaL_checktype(L, 3, LUA_TTABLE);
  if (timeout != 0 && gilua_sched_on(gilua_ts())) {
    /* Under the deterministic scheduler: a loop with timers alone waits
    ** on the virtual clock (woken by wakeup()); one that watches
    ** descriptors waits for them in real time, and its clock goes on by
    ** what it waited. */
    do n = epoll_wait(p->epfd, p->ev, MAXEVENTS, 0); while (n < 0 && errno == EINTR);
    if (n == 0 && p->nfds == 0) {
      gilua_sched_note(0, NULL, "asyncio's event loop (timers only)");
      gilua_sched_wait(L, p, gilua_until(timeout));
      do n = epoll_wait(p->epfd, p->ev, MAXEVENTS, 0); while (n < 0 && errno == EINTR);
    }
    else if (n == 0) {
      double deadline = gilua_deadline_after(timeout);
      GILUA_BEGIN_ALLOW_THREADS(L)
        n = gilua_waitwith(epoll_ms, p, deadline);
        if (n < 0) en = errno;
      GILUA_END_ALLOW_THREADS(L)
      if (n == 0 && timeout > 0) gilua_sched_elapse(timeout);
    }
    if (n < 0 && en == 0) en = errno;
  }
  else if (timeout == 0) {
    do n = epoll_wait(p->epfd, p->ev, MAXEVENTS, 0); while (n < 0 && errno == EINTR);
    if (n < 0) en = errno;
  }
  else {
    double deadline = gilua_deadline_after(timeout);
    GILUA_BEGIN_ALLOW_THREADS(L)
      n = gilua_waitwith(epoll_ms, p, deadline);
      if (n < 0) en = errno;
    GILUA_END_ALLOW_THREADS(L)
  }
  gilua_checkinterrupt(L);
  if (n < 0) {
    if (en != EINTR) return gilua_oserror(L, en, "epoll_wait", NULL);
    n = 0;
  }
  for (i = 0; i < n; i++) {
    int fd = p->ev[i].data.fd;
    unsigned int e = p->ev[i].events;
    int bits = 0;
    if (fd == p->wakefd) {
      uint64_t v;
      while (read(p->wakefd, &v, sizeof v) > 0) {}
      woken = 1;
      continue;
    }
    if (e & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) bits |= READ_BIT;
    if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) bits |= WRITE_BIT;
    lua_pushinteger(L, fd);
    lua_rawseti(L, 3, ++k);
    lua_pushinteger(L, bits);
    lua_rawseti(L, 3, ++k);
  }
  lua_pushinteger(L, k / 2);
  lua_pushboolean(L, woken);
  return 2;
}


/* poller:wakeup(): makes a poll() in progress (or the next one) return.
** Any thread may call it. */
static int p_wakeup (lua_State *L) {
  Poller *p = topoller(L);
  uint64_t one = 1;
  ssize_t r = write(p->wakefd, &one, sizeof one);
  (void)r;                      /* EAGAIN: the counter is full, so it is set */
  gilua_sched_wake(p, 1);
  return 0;
}


static int p_close (lua_State *L) {
  Poller *p = (Poller *)luaL_checkudata(L, 1, POLLER_MT);
  if (p->epfd >= 0) close(p->epfd);
  if (p->wakefd >= 0) close(p->wakefd);
  p->epfd = p->wakefd = -1;
  return 0;
}


static const luaL_Reg poller_methods[] = {
  {"modify", p_modify},
  {"poll", p_poll},
  {"wakeup", p_wakeup},
  {"close", p_close},
  {NULL, NULL}
};

/* }====================================================== */


/*
** {======================================================
** Sockets
** =======================================================
*/

static int setnonblock (int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return -1;
  return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}


/* A port as Python's sockets take it: 0 to 65535, else OverflowError. */
/* listen(host, port, backlog) -> fd, host, port: a listening socket on
** the first address that binds. */
static int l_listen (lua_State *L) {
  const char *host = luaL_optstring(L, 1, NULL);
  int port = gilua_checkport(L, 2, "bind");
  return gilua_listen_tcp(L, host, port, (int)luaL_optinteger(L, 3, 100),
                          SOCK_NONBLOCK, "listen");
}


/* accept(fd) -> newfd, host, port; nil when no connection is waiting. */
static int l_accept (lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int nfd, one = 1;
  do {
    nfd = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
  } while (nfd < 0 && errno == EINTR);
  if (nfd < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED)
      return 0;
    return gilua_oserror(L, errno, "accept", NULL);
  }
  setsockopt(nfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  lua_pushinteger(L, nfd);
  return 1 + gilua_pushaddr(L, (struct sockaddr *)&ss, len);
}


/*
** connect(host, port[, skip]) -> fd, pending, index: starts a connection
** to the first address, after the first 'skip' ones, that accepts it at
** once or is in progress; 'pending' tells to wait for writability, then
** call connect_result(fd); 'index' is that address's rank, so that a
** connection refused later can be tried again from the next address (as
** for "localhost", which may resolve to ::1 before 127.0.0.1).
*/
static int l_connect (lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  int port = gilua_checkport(L, 2, "connect");
  int skip = (int)luaL_optinteger(L, 3, 0);
  struct addrinfo *res = gilua_resolve(L, host, port, 0), *ai;
  int fd = -1, en = EADDRNOTAVAIL, pending = 0, one = 1, index = 0;
  for (ai = res; ai; ai = ai->ai_next, index++) {
    int rc;
    if (index < skip) continue;
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                ai->ai_protocol);
    if (fd < 0) { en = errno; continue; }
    do {
      rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) break;
    if (errno == EINPROGRESS) { pending = 1; break; }
    en = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) return gilua_oserror(L, en, "connect", NULL);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  lua_pushinteger(L, fd);
  lua_pushboolean(L, pending);
  lua_pushinteger(L, index + 1);
  return 3;
}


/* connect_result(fd): raises the error of a finished non-blocking connect. */
static int l_connect_result (lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err != 0) return gilua_oserror(L, err, "connect", NULL);
  return 0;
}


/* recv(fd, n) -> data ("" at end of stream), or nil if it would block. */
static int l_recv (lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  lua_Integer n = luaL_optinteger(L, 2, RECV_MAX);
  char buf[RECV_MAX];
  ssize_t r;
  /* At most RECV_MAX bytes a call, into the C stack: a Lua buffer of n
  ** bytes would be allocated (and collected) even when nothing arrives,
  ** which the streams meet before every wait. Fewer bytes than asked is
  ** what a read may always return. */
  if (n <= 0 || n > RECV_MAX) n = RECV_MAX;
  do {
    r = read(fd, buf, (size_t)n);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return gilua_oserror(L, errno, "recv", NULL);
  }
  lua_pushlstring(L, buf, (size_t)r);
  return 1;
}


/* send(fd, data, i) -> bytes written from position i (1-based), 0 if it
** would block. Pipes (not sockets) are written with write(2). */
static int l_send (lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  lua_Integer i = luaL_optinteger(L, 3, 1);
  ssize_t r;
  if (i < 1) i = 1;
  if ((size_t)i > len) {
    lua_pushinteger(L, 0);
    return 1;
  }
  do {
    r = send(fd, s + i - 1, len - (size_t)(i - 1), MSG_NOSIGNAL);
    if (r < 0 && errno == ENOTSOCK)
      r = write(fd, s + i - 1, len - (size_t)(i - 1));
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) r = 0;
    else return gilua_oserror(L, errno, "send", NULL);
  }
  lua_pushinteger(L, (lua_Integer)r);
  return 1;
}


static int l_shutdown_write (lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  shutdown(fd, SHUT_WR);
  return 0;
}


static int l_close (lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  if (fd >= 0) close(fd);
  return 0;
}


static int l_sockname (lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int rc = lua_toboolean(L, 2)
    ? getpeername(fd, (struct sockaddr *)&ss, &len)
    : getsockname(fd, (struct sockaddr *)&ss, &len);
  if (rc < 0) return gilua_oserror(L, errno, "getsockname", NULL);
  return gilua_pushaddr(L, (struct sockaddr *)&ss, len);
}


/* set_nonblocking(fd): for pipes handed to the loop. */
static int l_set_nonblocking (lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  if (setnonblock(fd) < 0) return gilua_oserror(L, errno, "fcntl", NULL);
  return 0;
}


/* A pipe (read end, write end), close-on-exec and blocking: the end that
** stays with the loop is made non-blocking with set_nonblocking (each end
** has its own open file description, so the child's end stays blocking). */
static int l_pipe (lua_State *L) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) return gilua_oserror(L, errno, "pipe", NULL);
  lua_pushinteger(L, fds[0]);
  lua_pushinteger(L, fds[1]);
  return 2;
}

/* }====================================================== */


/*
** {======================================================
** Task coroutines
** =======================================================
*/

/*
** The coroutine of the task that this OS thread's loop is stepping. An
** await must run in a task's own coroutine: one nested inside it (a
** generator made with coroutine.wrap, say) would hand its yield to its
** own resumer instead of the loop. Keeping the coroutine here makes that
** check a pointer comparison, with no table from coroutines to tasks to
** keep up to date. Each OS thread runs at most one loop, and a task's
** coroutine runs only on its loop's thread, so a thread-local is right
** across GIL switches.
*/
static __thread lua_State *stepping;


/*
** resume(co, values...): one step of a task. Returns
**   true, tag, y       when the coroutine yielded (its first two values);
**   false, n, v        when it returned n values: v is the value when
**                      n == 1, a table.pack of them when n > 1;
**   nil, e             when it raised e.
** A fixed number of results lets the step take them in locals, with no
** vararg function in between.
*/
static int l_resume (lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  lua_State *outer = stepping;
  int n, i;
  luaL_argexpected(L, co, 1, "coroutine");
  stepping = co;
  n = gilua_coresume(L, co, lua_gettop(L) - 1);
  stepping = outer;
  if (n < 0) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  luaL_checkstack(L, 3, "too many results to resume");
  if (lua_status(co) == LUA_YIELD) {
    lua_settop(L, 3);                /* co, tag, y */
    lua_pushboolean(L, 1);
    lua_replace(L, 1);
    return 3;
  }
  lua_pushboolean(L, 0);
  lua_replace(L, 1);                 /* false, values... */
  lua_pushinteger(L, n);
  if (n == 1) {
    lua_insert(L, 2);                /* false, 1, v */
    return 3;
  }
  if (n == 0) return 2;              /* false, 0 */
  lua_createtable(L, n, 1);
  lua_insert(L, 2);
  lua_setfield(L, 2, "n");
  for (i = n; i >= 1; i--) lua_rawseti(L, 2, i);
  lua_pushinteger(L, n);
  lua_insert(L, 2);                  /* false, n, {...} */
  return 3;
}


/*
** body(handler, fn, args...): the body of a task's coroutine. It calls
** fn(args...) in a protected call with 'handler' as message handler and
** returns fn's results. In a coroutine that protected call is
** yieldable, so when fn raises, Lua closes the pending to-be-closed
** variables above it right there, letting their closing methods yield
** (coroutine.close would run them unable to); then the error, or the one
** a closing method raised instead, is raised again out of the coroutine.
** In C because it is on every task's path: 100,000 tasks awaiting
** sleep(0) took 13% longer with a Lua function around xpcall, about 3%
** more instructions with this (callgrind, 20,000 tasks).
*/
static int body_end (lua_State *L, int status, lua_KContext ctx) {
  if (status != LUA_OK && status != LUA_YIELD) return lua_error(L);
  return lua_gettop(L) - (int)ctx;
}

static int l_body (lua_State *L) {
  return body_end(L, lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 1, 1,
                                body_end), 1);
}


/* intask(): whether the caller runs in the coroutine of the task being
** stepped. */
static int l_intask (lua_State *L) {
  lua_pushboolean(L, L == stepping);
  return 1;
}

/* }====================================================== */


static const luaL_Reg funcs[] = {
  {"resume", l_resume},
  {"intask", l_intask},
  {"body", l_body},
  {"poller", l_poller},
  {"listen", l_listen},
  {"accept", l_accept},
  {"connect", l_connect},
  {"connect_result", l_connect_result},
  {"recv", l_recv},
  {"send", l_send},
  {"shutdown_write", l_shutdown_write},
  {"close", l_close},
  {"sockname", l_sockname},
  {"set_nonblocking", l_set_nonblocking},
  {"pipe", l_pipe},
  {NULL, NULL}
};


int luaopen_gilua_asyncio (lua_State *L) {
  static const luaL_Reg meta[] = {{"__gc", p_close}, {NULL, NULL}};
  gilua_newclass(L, POLLER_MT, poller_methods, meta);
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  lua_pushinteger(L, READ_BIT);
  lua_setfield(L, -2, "READ");
  lua_pushinteger(L, WRITE_BIT);
  lua_setfield(L, -2, "WRITE");
  return 1;
}
