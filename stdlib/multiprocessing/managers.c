/*
** managers.c: the sockets of managers and of multiprocessing.connection's
** Listener and Client, for _multiprocessing: Unix sockets (a private
** directory, a listening socket of mode 0600) and TCP sockets (any host
** and port, port 0 for a free one), connections on them (the Connection
** of connection.c), and random bytes for authentication keys.
*/
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "mp.h"


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
  if (mkdtemp(path) == NULL) return gilua_oserror(L, errno, "mkdtemp", NULL);
  lua_pushstring(L, path);
  return 1;
}


/* listen(path, [backlog]) -> the descriptor of a Unix socket, mode 0600 */
static int l_listen (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int backlog = (int)luaL_optinteger(L, 2, 64);
  struct sockaddr_un a;
  int fd;
  fill_addr(L, &a, path);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return gilua_oserror(L, errno, "socket", NULL);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || chmod(path, 0600) != 0
      || listen(fd, backlog) != 0) {
    int e = errno;
    close(fd);
    return gilua_oserror(L, e, "listen", path);
  }
  lua_pushinteger(L, fd);
  return 1;
}


/*
** {==================================================================
** TCP
** ===================================================================
*/

static void nodelay (int fd) {
  int one = 1;   /* requests and replies are small: no Nagle delay */
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}


/* listen_tcp(host, port, [backlog]) -> descriptor, host, port: the
** address really bound (port 0 asks the system for a free port). */
static int l_listen_tcp (lua_State *L) {
  int port = gilua_checkport(L, 2, "listen_tcp");
  return gilua_listen_tcp(L, luaL_optstring(L, 1, ""), port,
                          (int)luaL_optinteger(L, 3, 64), 0, "bind");
}


/* Connects fd without the GIL: a non-blocking connect and an
** interruptible wait for its end. 0 or an errno (EINTR: Ctrl-C). */
static int connect_fd (int fd, const struct sockaddr *sa, socklen_t len) {
  int fl = fcntl(fd, F_GETFL), e = 0;
  socklen_t elen = sizeof e;
  struct pollfd p;
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) return errno;
  if (connect(fd, sa, len) != 0) {
    if (errno != EINPROGRESS && errno != EINTR) return errno;
    p.fd = fd;
    p.events = POLLOUT;
    p.revents = 0;
    if (gilua_waitfds(&p, 1, GILUA_FOREVER) < 0) return errno;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) != 0) return errno;
    if (e != 0) return e;
  }
  return fcntl(fd, F_SETFL, fl) != 0 ? errno : 0;
}


/* connect_tcp(host, port) -> a Connection */
static int l_connect_tcp (lua_State *L) {
  int port = gilua_checkport(L, 2, "connect_tcp");
  struct addrinfo *res = gilua_resolve(L, luaL_optstring(L, 1, ""), port, 0), *ai;
  int fd = -1, e = ECONNREFUSED;
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) { e = errno; continue; }
    GILUA_BEGIN_ALLOW_THREADS(L)
      e = connect_fd(fd, ai->ai_addr, ai->ai_addrlen);
    GILUA_END_ALLOW_THREADS(L)
    if (e == 0) break;
    close(fd);
    fd = -1;
    if (e == EINTR) break;
  }
  freeaddrinfo(res);
  if (e == EINTR) gilua_checkinterrupt(L);
  if (fd < 0) {
    lua_pushfstring(L, "%s:%d", luaL_optstring(L, 1, ""), (int)lua_tointeger(L, 2));
    return gilua_oserror(L, e, "connect", lua_tostring(L, -1));
  }
  nodelay(fd);
  mp_newconn(L, fd, fd);
  return 1;
}

/* }================================================================== */


/* accept(lfd) -> a Connection, and the peer's host and port (TCP) */
static int l_accept (lua_State *L) {
  int lfd = (int)luaL_checkinteger(L, 1), fd;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  GILUA_BEGIN_ALLOW_THREADS(L)
    do fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
    while (fd < 0 && errno == EINTR && !gilua_interrupt_pending());
  GILUA_END_ALLOW_THREADS(L)
  gilua_checkinterrupt(L);
  if (fd < 0) return gilua_oserror(L, errno, "accept", NULL);
  mp_newconn(L, fd, fd);
  if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
    nodelay(fd);
    return 1 + gilua_pushaddr(L, (struct sockaddr *)&ss, len);
  }
  return 1;
}


static int l_connect (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct sockaddr_un a;
  int fd, r, e = 0;
  fill_addr(L, &a, path);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return gilua_oserror(L, errno, "socket", NULL);
  GILUA_BEGIN_ALLOW_THREADS(L)
    do r = connect(fd, (struct sockaddr *)&a, sizeof a);
    while (r < 0 && errno == EINTR && !gilua_interrupt_pending());
    if (r != 0) e = errno;
  GILUA_END_ALLOW_THREADS(L)
  if (r != 0) {
    close(fd);
    gilua_checkinterrupt(L);
    return gilua_oserror(L, e, "connect", path);
  }
  mp_newconn(L, fd, fd);
  return 1;
}


static int l_random (lua_State *L) {
  int n = (int)luaL_optinteger(L, 1, 32), fd, got = 0;
  char buf[256];
  if (n < 1 || n > (int)sizeof buf) return luaL_argerror(L, 1, "1 to 256");
  fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) { got = mp_read_all(fd, buf, (size_t)n, 0) == 0; close(fd); }
  if (!got) return gilua_oserror(L, errno, "urandom", NULL);
  lua_pushlstring(L, buf, (size_t)n);
  return 1;
}


static int l_remove (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_pushboolean(L, remove(path) == 0);
  return 1;
}


static const luaL_Reg funcs[] = {
  {"mkdtemp", l_mkdtemp},
  {"listen", l_listen},
  {"listen_tcp", l_listen_tcp},
  {"accept", l_accept},
  {"connect", l_connect},
  {"connect_tcp", l_connect_tcp},
  {"random", l_random},
  {"remove", l_remove},
  {NULL, NULL}
};


void mp_open_managers (lua_State *L) {
  luaL_setfuncs(L, funcs, 0);
}
