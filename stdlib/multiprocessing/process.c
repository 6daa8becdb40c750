/*
** process.c: processes for _multiprocessing: fork (with the GIL held),
** spawn (fork and exec of a new interpreter), _exit, waiting for children
** and for descriptors, signals.
*/
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "mp.h"

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
  if (pid < 0) return gilua_oserror(L, errno, "fork", NULL);
  if (pid == 0) mp_feeders_after_fork();
  lua_pushinteger(L, pid);
  return 1;
}


/* Python's os._exit in a child: flush, let queued puts reach their pipes,
** and leave without the parent's exit handlers. */
static int l_exit (lua_State *L) {
  int code = (int)luaL_optinteger(L, 1, 0), n;
  qlocal **qs = mp_feeders_hold(&n);
  gilua_release(L);
  fflush(stdout);
  fflush(stderr);
  mp_feeders_flush(qs, n);
  _exit(code);
  return 0;
}


/* waitpid(pid, block) -> exitcode (negative: the signal), or nil if still
** running (block false) or not our child any more. A blocking wait ends
** with KeyboardInterrupt on Ctrl-C (a Ctrl-C just before it is seen when
** the child ends: wait for a pidfd to be sure of it). */
static int l_waitpid (lua_State *L) {
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  int block = lua_toboolean(L, 2), status = 0;
  pid_t r;
  if (block) {
    GILUA_BEGIN_ALLOW_THREADS(L)
      do r = waitpid(pid, &status, 0);
      while (r < 0 && errno == EINTR && !gilua_interrupt_pending());
    GILUA_END_ALLOW_THREADS(L)
    gilua_checkinterrupt(L);
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
  double timeout = gilua_timeout(L, 2, "wait", NULL, GILUA_NEG_ZERO);
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
  r = gilua_poll(L, pfd, (int)n, gilua_deadline_after(timeout), "wait");
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
  if (pid < 0) return gilua_oserror(L, errno, "fork", NULL);
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
  {NULL, NULL}
};


void mp_open_process (lua_State *L) {
  luaL_setfuncs(L, funcs, 0);
}
