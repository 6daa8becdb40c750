/*
** spawn.c: _subprocess.spawn, starting a child.
**
** posix_spawn: glibc runs it with clone(CLONE_VM|CLONE_VFORK) and reports
** the child's failure to exec (or to run a file action) as its return
** value, so a missing program is an error in the parent, never a child
** that dies with 127. The file actions give the child its standard
** streams and close every other descriptor (Python's close_fds=True):
** io.open does not set O_CLOEXEC, and nothing may leak between children.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "subprocess.h"

extern char **environ;

#if defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define HAVE_CLOSEFROM
#endif
#if defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
#define HAVE_ADDCHDIR
#endif


/*
** Everything a spawn holds between its start and its end. Lua values are
** read first (where errors may be raised); from the first descriptor
** opened on, a failure is recorded in 'err' and raised after the cleanup.
*/
typedef struct Spawn {
  char **argv, **envp;
  const char *program, *path, *cwd;
  int spec[3];            /* what each of 0, 1, 2 gets, or SPEC_* */
  int src[3];             /* the descriptor the child dups onto it, or -1 */
  int parent[3];          /* our end of a pipe, or -1 */
  subp_Stream *stream[3]; /* Lua files for our pipe ends */
  int temp[8];            /* closed once the child runs */
  int ntemp;
  int *keep;              /* pass_fds, sorted */
  int nkeep;
  int close_fds, new_session, restore_signals;
  lua_Integer bufsize;
  int err;                /* errno of a failure */
  int err_cwd;            /* ... about the cwd, not the program */
} Spawn;


/* Checks a string array (field 'name' of the table at 1): its length in
** '*n' (-1 when absent), the bytes its strings need as result. */
static size_t strings_size (lua_State *L, const char *name, int *n) {
  size_t total = 0;
  int i, len;
  if (lua_getfield(L, 1, name) == LUA_TNIL) {
    lua_pop(L, 1);
    *n = -1;
    return 0;
  }
  luaL_checktype(L, -1, LUA_TTABLE);
  len = (int)luaL_len(L, -1);
  for (i = 1; i <= len; i++) {
    size_t l;
    const char *s;
    if (lua_geti(L, -1, i) != LUA_TSTRING)
      luaL_error(L, "%s[%d] must be a string", name, i);
    s = lua_tolstring(L, -1, &l);
    if (strlen(s) != l)
      gilua_raise(L, "ValueError", "embedded null byte");
    total += l + 1;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  *n = len;
  return total;
}


/* Copies the array into the NULL-ended vector 'v', its strings to 's';
** returns the end of the strings. */
static char *strings_copy (lua_State *L, const char *name, int n,
                           char **v, char *s) {
  int i;
  lua_getfield(L, 1, name);
  for (i = 0; i < n; i++) {
    size_t l;
    const char *str;
    lua_geti(L, -1, i + 1);
    str = lua_tolstring(L, -1, &l);
    memcpy(s, str, l + 1);
    v[i] = s;
    s += l + 1;
    lua_pop(L, 1);
  }
  v[n] = NULL;
  lua_pop(L, 1);
  return s;
}


static char *string_copy (lua_State *L, const char *name, const char **out,
                          char *mem) {
  size_t l;
  const char *s;
  *out = NULL;
  if (lua_getfield(L, 1, name) != LUA_TNIL) {
    s = lua_tolstring(L, -1, &l);
    memcpy(mem, s, l + 1);
    *out = mem;
    mem += l + 1;
  }
  lua_pop(L, 1);
  return mem;
}


static size_t string_size (lua_State *L, const char *name, int required) {
  size_t l = 0;
  int t = lua_getfield(L, 1, name);
  if (t != LUA_TNIL || required) {
    const char *s = luaL_checklstring(L, -1, &l);
    if (strlen(s) != l)
      gilua_raise(L, "ValueError", "embedded null byte");
    l++;
  }
  lua_pop(L, 1);
  return l;
}


static int optbool (lua_State *L, const char *name, int def) {
  int t = lua_getfield(L, 1, name), v = (t == LUA_TNIL) ? def : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}


/* What the child's descriptor 'i' gets: a SPEC_* value or a descriptor. */
static int readspec (lua_State *L, int i) {
  static const char *const names[] = {"stdin", "stdout", "stderr"};
  int t = lua_getfield(L, 1, names[i]), v;
  if (t == LUA_TNIL) v = SPEC_INHERIT;
  else if (t == LUA_TNUMBER && lua_isinteger(L, -1)) {
    lua_Integer n = lua_tointeger(L, -1);
    if (n == SPEC_STDOUT && i != 2)
      gilua_raise(L, "ValueError", "STDOUT can only be used for stderr");
    if (n < SPEC_DEVNULL || n > INT_MAX)
      gilua_raise(L, "ValueError", "%s: bad file descriptor %d", names[i], (int)n);
    v = (int)n;
    if (v >= 0 && fcntl(v, F_GETFD) < 0) gilua_oserror(L, errno, names[i], NULL);
  }
  else {
    luaL_Stream *p = (luaL_Stream *)luaL_testudata(L, -1, LUA_FILEHANDLE);
    if (p == NULL)
      gilua_raise(L, "TypeError", "%s must be PIPE, DEVNULL, %sa file or a "
                  "descriptor, not %s", names[i], i == 2 ? "STDOUT, " : "",
                  luaL_typename(L, -1));
    if (p->closef == NULL)
      gilua_raise(L, "ValueError", "%s: I/O operation on closed file", names[i]);
    v = subp_handle_fd(p);
    if (v < 0)
      gilua_raise(L, "ValueError", "%s: the file has no descriptor", names[i]);
  }
  lua_pop(L, 1);
  return v;
}


static int cmpint (const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}


/* Checks pass_fds and returns its length; with 'keep', stores the ones
** above 2 there, sorted. */
static int readkeep (lua_State *L, Spawn *sp, int *keep) {
  int i, n, k = 0;
  if (lua_getfield(L, 1, "pass_fds") == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  luaL_checktype(L, -1, LUA_TTABLE);
  n = (int)luaL_len(L, -1);
  for (i = 1; i <= n; i++) {
    lua_Integer fd;
    int isint;
    lua_geti(L, -1, i);
    fd = lua_tointegerx(L, -1, &isint);
    if (!isint || fd < 0 || fd > INT_MAX)
      gilua_raise(L, "ValueError", "bad value(s) in pass_fds");
    if (fcntl((int)fd, F_GETFD) < 0) gilua_oserror(L, errno, "pass_fds", NULL);
    lua_pop(L, 1);
    if (keep != NULL && fd > 2) keep[k++] = (int)fd;
  }
  lua_pop(L, 1);
  if (keep != NULL) {
    qsort(keep, (size_t)k, sizeof(int), cmpint);
    sp->keep = keep;
    sp->nkeep = k;
  }
  return n;
}


static int keeptemp (Spawn *sp, int fd) {
  sp->temp[sp->ntemp++] = fd;
  return fd;
}


/*
** Descriptors for the child's 0, 1 and 2. A source among 0..2 that is not
** its own target is copied above 2 first: the dup2 of an earlier stream
** could overwrite it (stderr=1 with a piped stdout).
*/
static int setup_stdio (Spawn *sp) {
  int i, devnull = -1;
  for (i = 0; i < 3; i++) {
    int spec = sp->spec[i], fd = -1;
    if (spec == SPEC_PIPE) {
      int p[2];
      if (pipe2(p, O_CLOEXEC) < 0) return errno;
      keeptemp(sp, i == 0 ? p[0] : p[1]);
      sp->parent[i] = i == 0 ? p[1] : p[0];
      fd = i == 0 ? p[0] : p[1];
    }
    else if (spec == SPEC_DEVNULL) {
      if (devnull < 0) {
        devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0) return errno;
        keeptemp(sp, devnull);
      }
      fd = devnull;
    }
    else if (spec >= 0) fd = spec;
    if (fd >= 0 && fd < 3 && fd != i) {
      fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
      if (fd < 0) return errno;
      keeptemp(sp, fd);
    }
    sp->src[i] = fd;
  }
  for (i = 0; i < 3; i++) {
    if (sp->parent[i] >= 0) {
      FILE *f = subp_openstream(sp->parent[i], i == 0, sp->bufsize);
      if (f == NULL) return errno ? errno : ENOMEM;
      sp->stream[i]->ls.f = f;
      sp->stream[i]->fd = sp->parent[i];
      sp->parent[i] = -1;  /* the FILE owns it now */
    }
  }
  return 0;
}


static int add_actions (Spawn *sp, posix_spawn_file_actions_t *fa) {
  int i, r, lo = 3;
  for (i = 0; i < 3; i++) {
    if (sp->src[i] >= 0 && (r = posix_spawn_file_actions_adddup2(fa, sp->src[i], i)))
      return r;
  }
  if (sp->spec[2] == SPEC_STDOUT && (r = posix_spawn_file_actions_adddup2(fa, 1, 2)))
    return r;
  for (i = 0; i < sp->nkeep; i++) {
    int fd = sp->keep[i];
    /* the same descriptor twice clears its FD_CLOEXEC (glibc 2.29+) */
    if ((r = posix_spawn_file_actions_adddup2(fa, fd, fd))) return r;
    if (sp->close_fds) {
      for (; lo < fd; lo++)
        if ((r = posix_spawn_file_actions_addclose(fa, lo))) return r;
      lo = fd + 1;
    }
  }
  if (sp->close_fds) {
#if defined(HAVE_CLOSEFROM)
    if ((r = posix_spawn_file_actions_addclosefrom_np(fa, lo))) return r;
#else
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 4096) max = 4096;
    for (; lo < max; lo++)
      if ((r = posix_spawn_file_actions_addclose(fa, lo))) return r;
#endif
  }
  if (sp->cwd != NULL) {
#if defined(HAVE_ADDCHDIR)
    if ((r = posix_spawn_file_actions_addchdir_np(fa, sp->cwd))) return r;
#else
    return ENOSYS;
#endif
  }
  return 0;
}


static int setup_attr (Spawn *sp, posix_spawnattr_t *attr) {
  sigset_t set;
  short flags = POSIX_SPAWN_SETSIGMASK;
  /* Threads other than the main one block SIGINT: not the child. */
  sigemptyset(&set);
  posix_spawnattr_setsigmask(attr, &set);
  if (sp->restore_signals) {  /* Python's restore_signals */
    sigaddset(&set, SIGPIPE);
    sigaddset(&set, SIGXFSZ);
    posix_spawnattr_setsigdefault(attr, &set);
    flags |= POSIX_SPAWN_SETSIGDEF;
  }
  if (sp->new_session) flags |= POSIX_SPAWN_SETSID;
  return posix_spawnattr_setflags(attr, flags);
}


/*
** A name without '/' is looked up in 'path' (the PATH of the child's
** environment, as Python does), trying the candidates as execvp would.
*/
static int spawn_search (pid_t *pid, Spawn *sp,
                         const posix_spawn_file_actions_t *fa,
                         const posix_spawnattr_t *attr, char **envp) {
  char buf[PATH_MAX];
  const char *p = sp->path;
  size_t nlen = strlen(sp->program);
  int denied = 0;
  for (;;) {
    const char *end = strchr(p, ':');
    size_t dlen = end ? (size_t)(end - p) : strlen(p);
    const char *dir = dlen ? p : ".";
    if (dlen == 0) dlen = 1;
    if (dlen + nlen + 2 <= sizeof buf) {
      memcpy(buf, dir, dlen);
      buf[dlen] = '/';
      memcpy(buf + dlen + 1, sp->program, nlen + 1);
      if (access(buf, X_OK) == 0) {
        int r = posix_spawn(pid, buf, fa, attr, sp->argv, envp);
        if (r == EACCES) denied = 1;
        else if (r != ENOENT && r != ENOTDIR) return r;
      }
      else if (errno == EACCES) denied = 1;
    }
    if (end == NULL) break;
    p = end + 1;
  }
  return denied ? EACCES : ENOENT;
}


static int check_cwd (const char *cwd) {
  struct stat st;
  if (stat(cwd, &st) < 0) return errno;
  if (!S_ISDIR(st.st_mode)) return ENOTDIR;
  if (access(cwd, X_OK) < 0) return errno;
  return 0;
}


/* Without the GIL. */
static pid_t run_spawn (Spawn *sp) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  char **envp = sp->envp ? sp->envp : environ;
  pid_t pid = -1;
  int r;
  if (sp->cwd != NULL && (r = check_cwd(sp->cwd)) != 0) {
    sp->err = r;
    sp->err_cwd = 1;
    return -1;
  }
  if ((r = posix_spawn_file_actions_init(&fa)) != 0) {
    sp->err = r;
    return -1;
  }
  if ((r = posix_spawnattr_init(&attr)) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    sp->err = r;
    return -1;
  }
  if ((r = add_actions(sp, &fa)) == 0 && (r = setup_attr(sp, &attr)) == 0) {
    if (sp->path != NULL) r = spawn_search(&pid, sp, &fa, &attr, envp);
    else r = posix_spawn(&pid, sp->program, &fa, &attr, sp->argv, envp);
  }
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  if (r != 0) {
    sp->err = r;
    return -1;
  }
  return pid;
}


/*
** _subprocess.spawn{program=, argv=, env=, path=, cwd=, stdin=, stdout=,
** stderr=, close_fds=, pass_fds=, start_new_session=, restore_signals=,
** bufsize=} -> proc, stdin file, stdout file, stderr file (nil where not
** piped). 'path' is given when 'program' is to be searched; 'env' is an
** array of "NAME=value" strings.
*/
static int l_spawn (lua_State *L) {
  Spawn sp;
  subp_Proc *proc;
  size_t strbytes;
  char *mem, **vec;
  int *keep;
  int i, nargv, nenv, nkeep, nvec;
  pid_t pid = -1;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  memset(&sp, 0, sizeof sp);
  for (i = 0; i < 3; i++) {
    sp.spec[i] = readspec(L, i);
    sp.src[i] = sp.parent[i] = -1;
  }
  strbytes = strings_size(L, "argv", &nargv) + strings_size(L, "env", &nenv);
  if (nargv < 1) return luaL_error(L, "argv must be a non-empty array");
  strbytes += string_size(L, "program", 1) + string_size(L, "path", 0)
            + string_size(L, "cwd", 0);
  nkeep = readkeep(L, &sp, NULL);
  sp.close_fds = optbool(L, "close_fds", 1);
  sp.new_session = optbool(L, "start_new_session", 0);
  sp.restore_signals = optbool(L, "restore_signals", 1);
  lua_getfield(L, 1, "bufsize");
  sp.bufsize = luaL_optinteger(L, -1, -1);
  lua_pop(L, 1);
  /* Lua objects first: nothing may raise once descriptors are open. */
  proc = subp_newproc(L);  /* 2 */
  for (i = 0; i < 3; i++) {  /* 3, 4, 5 */
    if (sp.spec[i] == SPEC_PIPE) sp.stream[i] = subp_newstream(L);
    else lua_pushnil(L);
  }
  /* The strings, copied (other threads run while the child starts):
  ** the vectors first, where a userdata's alignment holds, then the
  ** pass_fds, then the bytes. */
  nvec = nargv + 1 + (nenv >= 0 ? nenv + 1 : 0);
  vec = (char **)lua_newuserdatauv(L, (size_t)nvec * sizeof(char *)
                                      + (size_t)nkeep * sizeof(int)
                                      + strbytes, 0);  /* 6 */
  keep = (int *)(vec + nvec);
  mem = (char *)(keep + nkeep);
  sp.argv = vec;
  mem = strings_copy(L, "argv", nargv, sp.argv, mem);
  if (nenv >= 0) {
    sp.envp = vec + nargv + 1;
    mem = strings_copy(L, "env", nenv, sp.envp, mem);
  }
  mem = string_copy(L, "program", &sp.program, mem);
  mem = string_copy(L, "path", &sp.path, mem);
  string_copy(L, "cwd", &sp.cwd, mem);
  readkeep(L, &sp, keep);
  subp_zombies_reap();
  sp.err = setup_stdio(&sp);
  if (sp.err == 0) {
    GILUA_BEGIN_ALLOW_THREADS(L)
      pid = run_spawn(&sp);
    GILUA_END_ALLOW_THREADS(L)
  }
  for (i = 0; i < sp.ntemp; i++) close(sp.temp[i]);
  for (i = 0; i < 3; i++) {
    subp_closefd(&sp.parent[i]);
    if (sp.stream[i] != NULL && sp.stream[i]->ls.f != NULL) {
      if (sp.err != 0) {
        fclose(sp.stream[i]->ls.f);
        sp.stream[i]->ls.f = NULL;
      }
      else sp.stream[i]->ls.closef = subp_stream_close;
    }
  }
  if (sp.err != 0) {
    lua_getfield(L, 1, sp.err_cwd ? "cwd" : "program");
    return gilua_oserror(L, sp.err, "spawn", lua_tostring(L, -1));
  }
  proc->pid = pid;
  proc->done = 0;
  lua_settop(L, 5);
  return 4;
}


void subp_open_spawn (lua_State *L) {
  lua_pushcfunction(L, l_spawn);
  lua_setfield(L, -2, "spawn");
}
