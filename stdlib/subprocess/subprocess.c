/*
** subprocess.c: `_subprocess`, the C side of Python's subprocess module
** (subprocess.lua builds Python's API on it): starting a child with
** posix_spawn, waiting for it, and the multiplexed exchange behind
** Popen.communicate. Everything that blocks does so with the GIL released.
**
** Choices:
** - posix_spawn: glibc runs it with clone(CLONE_VM|CLONE_VFORK) and reports
**   the child's failure to exec (or to run a file action) as its return
**   value, so a missing program is an error in the parent, never a child
**   that dies with 127. The file actions give the child its standard
**   streams and close every other descriptor (Python's close_fds=True):
**   io.open does not set O_CLOEXEC, and nothing may leak between children.
** - Reaping only happens holding the GIL, with waitpid(WNOHANG) on our own
**   pids; blocking waits only watch (waitid with WNOWAIT, or a pidfd), so
**   that any number of threads can wait for one child, and the one that
**   collects it publishes the status before any other looks. No SIGCHLD
**   handler.
** - Waits poll a pidfd (Linux 5.3+) with the one interruptible wait
**   (vm/gilua_wait.c): the wait ends the moment the child does, without
**   the latency or the wake-ups of Python's loop of growing sleeps, and
**   at once on Ctrl-C. When pidfd_open is refused, a timed wait falls
**   back on that loop, and a wait for ever on waitid.
** - communicate polls the pipes, writing at most PIPE_BUF bytes after
**   POLLOUT (which then cannot block) on descriptors left in blocking mode:
**   O_NONBLOCK would belong to the open file description, shared with any
**   other child the pipe was handed to.
** - A write to the stdin of a child that has gone raises SIGPIPE, whose
**   default action would end the whole interpreter (Python ignores SIGPIPE
**   at start-up; gilua keeps Lua's default). Our writes block it in the
**   writing thread and drop the pending signal: the write fails with EPIPE.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gilua_vm.h"

extern char **environ;

#define PROC_MT "_subprocess.process"
#define COMM_MT "_subprocess.communicator"

/* Python's values, so that a descriptor number (>= 0) is never mistaken. */
#define SPEC_PIPE     (-1)
#define SPEC_STDOUT   (-2)
#define SPEC_DEVNULL  (-3)
#define SPEC_INHERIT  (-100)

/* Bytes read from a pipe at a time. */
#define CHUNK  65536

#if defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define HAVE_CLOSEFROM
#endif
#if defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
#define HAVE_ADDCHDIR
#endif

/* Timed waits may use pidfds until the kernel refuses one. */
static int use_pidfd = 1;



/*
** {======================================================
** Errors and signals
** =======================================================
*/

/*
** SIGPIPE is blocked in the calling thread around our writes to a child;
** one that they raised meanwhile is dropped before it is unblocked.
** Returns whether it was unblocked before.
*/
static int sigpipe_block (sigset_t *old) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &s, old);
  return !sigismember(old, SIGPIPE);
}


static void sigpipe_restore (const sigset_t *old, int unblock) {
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

/*
** liolib's luaL_Stream (io functions look at that part only) plus the
** descriptor, which fileno() cannot tell for the cookie stream of a
** child's stdin.
*/
typedef struct Stream {
  luaL_Stream ls;
  int fd;
} Stream;


/* The stdin of a child: plain writes, except that SIGPIPE cannot kill us. */
static ssize_t stdin_write (void *cookie, const char *buf, size_t size) {
  int fd = (int)(intptr_t)cookie;
  size_t done = 0;
  sigset_t old;
  int unblock = sigpipe_block(&old);
  while (done < size) {
    ssize_t n = write(fd, buf + done, size - done);
    if (n > 0) done += (size_t)n;
    else if (n == 0 || errno != EINTR || gilua_interrupt_pending()) break;
  }
  sigpipe_restore(&old, unblock);
  /* Never negative (fopencookie's rule: stdio would take -1 for a count);
  ** short, with errno set, is an error. */
  return (ssize_t)done;
}


static int stdin_close (void *cookie) {
  return close((int)(intptr_t)cookie);
}


/* liolib's closef: fclose may flush into a full pipe, so without the GIL. */
static int stream_close (lua_State *L) {
  Stream *s = (Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
  FILE *f = s->ls.f;
  int res, en;
  GILUA_BEGIN_ALLOW_THREADS(L)
    res = fclose(f);
    en = errno;
  GILUA_END_ALLOW_THREADS(L)
  errno = en;
  return luaL_fileresult(L, res == 0, NULL);
}


/* A closed file handle, to be opened once the descriptor exists (making
** it cannot fail then). */
static Stream *newstream (lua_State *L) {
  Stream *s = (Stream *)lua_newuserdatauv(L, sizeof *s, 0);
  s->ls.f = NULL;
  s->ls.closef = NULL;
  s->fd = -1;
  luaL_setmetatable(L, LUA_FILEHANDLE);
  return s;
}


/* Python's bufsize: 0 unbuffered, 1 line buffered, n > 1 a buffer of n
** bytes, negative stdio's default. */
static FILE *openstream (int fd, int writing, lua_Integer bufsize) {
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


/* The descriptor behind an open Lua file handle, or -1. */
static int handle_fd (luaL_Stream *p) {
  if (p->closef == stream_close) return ((Stream *)p)->fd;
  return fileno(p->f);
}


static luaL_Stream *openhandle (lua_State *L, int idx) {
  luaL_Stream *p = (luaL_Stream *)luaL_testudata(L, idx, LUA_FILEHANDLE);
  return (p != NULL && p->closef != NULL) ? p : NULL;
}

/* }====================================================== */



/*
** {======================================================
** Processes
** =======================================================
*/

typedef struct Proc {
  pid_t pid;
  int done;          /* collected: 'code' is the returncode */
  int code;
  int pidfd;         /* for timed waits, or -1 */
  int waiters;       /* threads waiting on 'pidfd' without the GIL */
} Proc;


/*
** Children whose Popen was collected while they ran: they are reaped when
** the next child starts (Python's _cleanup). Under the GIL.
*/
static pid_t *zombies;
static int nzombies, zombiecap;

static void zombie_add (pid_t pid) {
  if (nzombies == zombiecap) {
    int cap = zombiecap ? 2 * zombiecap : 16;
    pid_t *z = (pid_t *)realloc(zombies, (size_t)cap * sizeof *z);
    if (z == NULL) return;  /* that one stays a zombie until we exit */
    zombies = z;
    zombiecap = cap;
  }
  zombies[nzombies++] = pid;
}


static void zombies_reap (void) {
  int i = 0;
  while (i < nzombies) {
    if (waitpid(zombies[i], NULL, WNOHANG) != 0)  /* collected, or not ours */
      zombies[i] = zombies[--nzombies];
    else i++;
  }
}


static int returncode (int status) {
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return status;
}


static void pidfd_drop (Proc *p) {
  if (p->pidfd >= 0 && p->waiters == 0) {
    close(p->pidfd);
    p->pidfd = -1;
  }
}


/*
** Holding the GIL: collects the child if it has ended. ECHILD means that
** someone else collected it (SIGCHLD ignored): Python's answer is 0.
*/
static int reap (Proc *p) {
  int status;
  pid_t r;
  if (p->done) return 1;
  do r = waitpid(p->pid, &status, WNOHANG); while (r < 0 && errno == EINTR);
  if (r == p->pid) {
    p->code = returncode(status);
    p->done = 1;
  }
  else if (r < 0) {
    p->code = 0;
    p->done = 1;
  }
  if (p->done) pidfd_drop(p);
  return p->done;
}


static Proc *checkproc (lua_State *L) {
  return (Proc *)luaL_checkudata(L, 1, PROC_MT);
}


static int proc_pid (lua_State *L) {
  lua_pushinteger(L, checkproc(L)->pid);
  return 1;
}


static int pushcode (lua_State *L, Proc *p) {
  if (p->done) lua_pushinteger(L, p->code);
  else lua_pushnil(L);
  return 1;
}


static int proc_poll (lua_State *L) {
  Proc *p = checkproc(L);
  reap(p);
  return pushcode(L, p);
}


static void openpidfd (Proc *p) {
#if defined(SYS_pidfd_open)
  if (p->pidfd < 0 && use_pidfd) {
    int fd = (int)syscall(SYS_pidfd_open, p->pid, 0);  /* always O_CLOEXEC */
    if (fd >= 0) p->pidfd = fd;
    else if (errno == ENOSYS || errno == EPERM) use_pidfd = 0;
  }
#else
  (void)p;
#endif
}


/*
** Waits for the end until 'deadline' (GILUA_FOREVER: none), or Ctrl-C
** (KeyboardInterrupt): on the pidfd, with the one interruptible wait.
** Without a pidfd, a wait for ever is waitid with WNOWAIT (it sees the end
** without collecting) and a timed one sleeps '*delay', doubled each turn
** up to 50 ms.
*/
static void wait_end (lua_State *L, Proc *p, double deadline, double *delay) {
  int fd;
  double nap = 0;
  openpidfd(p);
  fd = p->pidfd;
  if (fd < 0 && deadline >= 0) {
    nap = deadline - gilua_monotonic();
    if (nap > *delay) nap = *delay;
    *delay = (*delay * 2 < 0.05) ? *delay * 2 : 0.05;
  }
  p->waiters++;
  GILUA_BEGIN_ALLOW_THREADS(L)
    if (fd >= 0) {
      struct pollfd pfd;
      pfd.fd = fd;
      pfd.events = POLLIN;
      pfd.revents = 0;
      gilua_waitfds(&pfd, 1, deadline);
    }
    else if (deadline < 0) {
      siginfo_t si;
      if (!gilua_interrupt_pending())
        waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOWAIT);
    }
    else gilua_nap(nap);
  GILUA_END_ALLOW_THREADS(L)
  p->waiters--;
  gilua_checkinterrupt(L);
}


/* proc:wait([timeout]) -> returncode, or nil when the timeout ran out. */
static int proc_wait (lua_State *L) {
  Proc *p = checkproc(L);
  double timeout = gilua_timeout(L, 2, "Popen.wait", NULL, GILUA_NEG_ZERO);
  double delay = 0.0005;
  double deadline = gilua_deadline_after(timeout);
  while (!reap(p)) {
    if (deadline >= 0 && gilua_monotonic() >= deadline) break;
    wait_end(L, p, deadline, &delay);
  }
  if (p->done) pidfd_drop(p);
  return pushcode(L, p);
}


/* proc:send_signal(sig) -> false if the child was already collected. */
static int proc_send_signal (lua_State *L) {
  Proc *p = checkproc(L);
  int sig = (int)luaL_checkinteger(L, 2);
  if (reap(p)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  /* Not collected, so the pid cannot have been reused. */
  if (kill(p->pid, sig) < 0 && errno != ESRCH)
    return gilua_oserror(L, errno, "kill", NULL);
  lua_pushboolean(L, 1);
  return 1;
}


static int proc_gc (lua_State *L) {
  Proc *p = (Proc *)lua_touserdata(L, 1);
  if (!reap(p)) zombie_add(p->pid);
  p->waiters = 0;
  pidfd_drop(p);
  return 0;
}


static const luaL_Reg proc_methods[] = {
  {"pid", proc_pid},
  {"poll", proc_poll},
  {"wait", proc_wait},
  {"send_signal", proc_send_signal},
  {NULL, NULL}
};

/* }====================================================== */



/*
** {======================================================
** Spawning
** =======================================================
*/

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
  Stream *stream[3];      /* Lua files for our pipe ends */
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
    v = handle_fd(p);
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


static void closefd (int *fd) {
  if (*fd >= 0) {
    close(*fd);
    *fd = -1;
  }
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
      FILE *f = openstream(sp->parent[i], i == 0, sp->bufsize);
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
  Proc *proc;
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
  proc = (Proc *)lua_newuserdatauv(L, sizeof *proc, 0);  /* 2 */
  proc->pid = 0;
  proc->done = 1;
  proc->code = 0;
  proc->pidfd = -1;
  proc->waiters = 0;
  luaL_setmetatable(L, PROC_MT);
  for (i = 0; i < 3; i++) {  /* 3, 4, 5 */
    if (sp.spec[i] == SPEC_PIPE) sp.stream[i] = newstream(L);
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
  zombies_reap();
  sp.err = setup_stdio(&sp);
  if (sp.err == 0) {
    GILUA_BEGIN_ALLOW_THREADS(L)
      pid = run_spawn(&sp);
    GILUA_END_ALLOW_THREADS(L)
  }
  for (i = 0; i < sp.ntemp; i++) close(sp.temp[i]);
  for (i = 0; i < 3; i++) {
    closefd(&sp.parent[i]);
    if (sp.stream[i] != NULL && sp.stream[i]->ls.f != NULL) {
      if (sp.err != 0) {
        fclose(sp.stream[i]->ls.f);
        sp.stream[i]->ls.f = NULL;
      }
      else sp.stream[i]->ls.closef = stream_close;
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

/* }====================================================== */



/*
** {======================================================
** communicate
** =======================================================
*/

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
    closefd(&c->fd[i]);
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
  int unblock = sigpipe_block(&old);
  lua_getfield(L, idx, "close");
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
  sigpipe_restore(&old, unblock);
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
    luaL_Stream *p = openhandle(L, i + 1);
    if (p == NULL) continue;
    if (i > 0) {
      c->piped[i] = 1;
      drain(&c->out[i], p->f);
    }
    if (i > 0 || has_input) {
      int fd = handle_fd(p);
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
    if (c->fd[0] >= 0 && c->off >= len) closefd(&c->fd[0]);
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
        else if (errno == EPIPE) closefd(&c->fd[0]);  /* it stopped reading */
        else if (errno != EINTR && errno != EAGAIN) return errno;
      }
      else {
        Buf *B = &c->out[k];
        ssize_t got;
        if (!buf_room(B, CHUNK)) return NOMEM;
        got = read(c->fd[k], B->b + B->n, CHUNK);
        if (got > 0) B->n += (size_t)got;
        else if (got == 0) closefd(&c->fd[k]);
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
  unblock = sigpipe_block(&old);
  GILUA_BEGIN_ALLOW_THREADS(L)
    st = exchange(c, in, len, deadline);
  GILUA_END_ALLOW_THREADS(L)
  sigpipe_restore(&old, unblock);
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

/* }====================================================== */



/*
** {======================================================
** Module
** =======================================================
*/

/* _subprocess.signame(n) -> "SIGKILL", or nil. */
static int l_signame (lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  const char *abbrev = (n > 0 && n < NSIG) ? sigabbrev_np((int)n) : NULL;
  if (abbrev == NULL) return 0;
  lua_pushfstring(L, "SIG%s", abbrev);
  return 1;
}


/* _subprocess.signum("SIGTERM" or "TERM") -> 15, or nil. */
static int l_signum (lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  int n;
  if (strncmp(name, "SIG", 3) == 0) name += 3;
  for (n = 1; n < NSIG; n++) {
    const char *abbrev = sigabbrev_np(n);
    if (abbrev != NULL && strcmp(abbrev, name) == 0) {
      lua_pushinteger(L, n);
      return 1;
    }
  }
  return 0;
}


/* _subprocess._use_pidfd(on): tests reach the fallback of timed waits. */
static int l_use_pidfd (lua_State *L) {
  int old = use_pidfd;
  if (!lua_isnoneornil(L, 1)) use_pidfd = lua_toboolean(L, 1);
  lua_pushboolean(L, old);
  return 1;
}


static const luaL_Reg funcs[] = {
  {"spawn", l_spawn},
  {"communicator", l_communicator},
  {"signame", l_signame},
  {"signum", l_signum},
  {"_use_pidfd", l_use_pidfd},
  {NULL, NULL}
};


int luaopen_gilua_subprocess (lua_State *L) {
  static const luaL_Reg proc_meta[] = {{"__gc", proc_gc}, {NULL, NULL}};
  static const luaL_Reg comm_meta[] = {{"__gc", comm_gc}, {NULL, NULL}};
  gilua_newclass(L, PROC_MT, proc_methods, proc_meta);
  gilua_newclass(L, COMM_MT, comm_methods, comm_meta);
  lua_pop(L, 2);
  luaL_newlib(L, funcs);
  lua_pushinteger(L, SPEC_PIPE);
  lua_setfield(L, -2, "PIPE");
  lua_pushinteger(L, SPEC_STDOUT);
  lua_setfield(L, -2, "STDOUT");
  lua_pushinteger(L, SPEC_DEVNULL);
  lua_setfield(L, -2, "DEVNULL");
  return 1;
}

/* }====================================================== */
