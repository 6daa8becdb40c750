/*
** managers.c: the manager's Unix sockets for _multiprocessing: a private
** directory, a listening socket (mode 0600), connections on it (the
** Connection of connection.c), and random bytes for authentication keys.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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


static int l_listen (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct sockaddr_un a;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return gilua_oserror(L, errno, "socket", NULL);
  fill_addr(L, &a, path);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || chmod(path, 0600) != 0
      || listen(fd, 64) != 0) {
    int e = errno;
    close(fd);
    return gilua_oserror(L, e, "listen", NULL);
  }
  lua_pushinteger(L, fd);
  return 1;
}


static int l_accept (lua_State *L) {
  int lfd = (int)luaL_checkinteger(L, 1), fd;
  GILUA_BEGIN_ALLOW_THREADS(L)
    do fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    while (fd < 0 && errno == EINTR && !gilua_interrupt_pending());
  GILUA_END_ALLOW_THREADS(L)
  gilua_checkinterrupt(L);
  if (fd < 0) return gilua_oserror(L, errno, "accept", NULL);
  mp_newconn(L, fd, fd);
  return 1;
}


static int l_connect (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct sockaddr_un a;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), r;
  if (fd < 0) return gilua_oserror(L, errno, "socket", NULL);
  fill_addr(L, &a, path);
  GILUA_BEGIN_ALLOW_THREADS(L)
    do r = connect(fd, (struct sockaddr *)&a, sizeof a);
    while (r < 0 && errno == EINTR && !gilua_interrupt_pending());
  GILUA_END_ALLOW_THREADS(L)
  if (r != 0 && errno == EINTR) close(fd);
  gilua_checkinterrupt(L);
  if (r != 0) {
    int e = errno;
    close(fd);
    return gilua_oserror(L, e, "connect", NULL);
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
  {"accept", l_accept},
  {"connect", l_connect},
  {"random", l_random},
  {"remove", l_remove},
  {NULL, NULL}
};


void mp_open_managers (lua_State *L) {
  luaL_setfuncs(L, funcs, 0);
}
