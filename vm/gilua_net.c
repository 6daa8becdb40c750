/*
** gilua_net.c: what every module that speaks TCP needs alike (asyncio's
** streams, multiprocessing's managers and Listener/Client): resolving a
** host without the GIL, a listening socket, an address as Lua values.
*/
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "gilua_vm.h"


/* A port argument: 0-65535, else Python's OverflowError. */
int gilua_checkport (lua_State *L, int arg, const char *fname) {
  lua_Integer port = luaL_checkinteger(L, arg);
  if (port < 0 || port > 65535)
    gilua_raise(L, "OverflowError", "%s(): port must be 0-65535, not %I", fname,
                (LUAI_UACINT)port);
  return (int)port;
}


/*
** The resolver may take a while for a name: it runs without the GIL. A
** failure is an OSError with the resolver's words and the host, as
** Python's socket.gaierror; a system error is the errno's OSError.
*/
struct addrinfo *gilua_resolve (lua_State *L, const char *host, int port,
                                int passive) {
  struct addrinfo hints, *res = NULL;
  char service[16];
  int rc, e;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  if (host != NULL && *host == '\0' && passive) host = NULL;
  snprintf(service, sizeof service, "%d", port);
  GILUA_BEGIN_ALLOW_THREADS(L)
    rc = getaddrinfo(host, service, &hints, &res);
    e = errno;
  GILUA_END_ALLOW_THREADS(L)
  if (rc == EAI_SYSTEM) gilua_oserror(L, e, "getaddrinfo", host);
  else if (rc != 0)
    gilua_raise(L, "OSError", "[Errno %d] %s: '%s'", rc, gai_strerror(rc),
                host ? host : "");
  return res;
}


int gilua_pushaddr (lua_State *L, const struct sockaddr *sa, unsigned int len) {
  char host[NI_MAXHOST], port[NI_MAXSERV];
  if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
      getnameinfo(sa, len, host, sizeof host, port, sizeof port,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    lua_pushnil(L);
    lua_pushnil(L);
  }
  else {
    lua_pushstring(L, host);
    lua_pushinteger(L, atoi(port));
  }
  return 2;
}


/*
** A server started again at once may reuse its port (SO_REUSEADDR, as
** Python's servers set it). The first address that binds serves; port 0
** lets the system choose, hence the address pushed back.
*/
int gilua_listen_tcp (lua_State *L, const char *host, int port, int backlog,
                      int sockflags, const char *call) {
  struct addrinfo *res = gilua_resolve(L, host, port, 1), *ai;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int fd = -1, e = EADDRNOTAVAIL, one = 1;
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | sockflags,
                ai->ai_protocol);
    if (fd < 0) { e = errno; continue; }
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0)
      break;
    e = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) return gilua_oserror(L, e, call, NULL);
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
    e = errno;
    close(fd);
    return gilua_oserror(L, e, "getsockname", NULL);
  }
  lua_pushinteger(L, fd);
  return 1 + gilua_pushaddr(L, (struct sockaddr *)&ss, len);
}
