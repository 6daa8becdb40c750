/*
** child.c: a started child of _subprocess, class "_subprocess.process":
** its pid, reaping, waiting for its end, signals.
**
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
*/
#include <errno.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "subprocess.h"

#define PROC_MT "_subprocess.process"

/* Timed waits may use pidfds until the kernel refuses one (a fact about
** the process, read and written by threads of every interpreter). */
static int use_pidfd = 1;
#define pidfd_ok()      __atomic_load_n(&use_pidfd, __ATOMIC_RELAXED)
#define pidfd_set(on)   __atomic_store_n(&use_pidfd, (on), __ATOMIC_RELAXED)


/*
** Children whose Popen was collected while they ran: they are reaped when
** the next child starts (Python's _cleanup). The process's children, of
** every interpreter: under their own lock.
*/
static pthread_mutex_t zombie_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t *zombies;
static int nzombies, zombiecap;

static void zombie_add (pid_t pid) {
  pthread_mutex_lock(&zombie_lock);
  if (nzombies == zombiecap) {
    int cap = zombiecap ? 2 * zombiecap : 16;
    pid_t *z = (pid_t *)realloc(zombies, (size_t)cap * sizeof *z);
    if (z == NULL) {  /* that one stays a zombie until we exit */
      pthread_mutex_unlock(&zombie_lock);
      return;
    }
    zombies = z;
    zombiecap = cap;
  }
  zombies[nzombies++] = pid;
  pthread_mutex_unlock(&zombie_lock);
}


void subp_zombies_reap (void) {
  int i = 0;
  pthread_mutex_lock(&zombie_lock);
  while (i < nzombies) {
    if (waitpid(zombies[i], NULL, WNOHANG) != 0)  /* collected, or not ours */
      zombies[i] = zombies[--nzombies];
    else i++;
  }
  pthread_mutex_unlock(&zombie_lock);
}


static int returncode (int status) {
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return status;
}


static void pidfd_drop (subp_Proc *p) {
  if (p->pidfd >= 0 && p->waiters == 0) {
    close(p->pidfd);
    p->pidfd = -1;
  }
}


/*
** Holding the GIL: collects the child if it has ended. ECHILD means that
** someone else collected it (SIGCHLD ignored): Python's answer is 0.
*/
static int reap (subp_Proc *p) {
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


static subp_Proc *checkproc (lua_State *L) {
  return (subp_Proc *)luaL_checkudata(L, 1, PROC_MT);
}


static int proc_pid (lua_State *L) {
  lua_pushinteger(L, checkproc(L)->pid);
  return 1;
}


static int pushcode (lua_State *L, subp_Proc *p) {
  if (p->done) lua_pushinteger(L, p->code);
  else lua_pushnil(L);
  return 1;
}


static int proc_poll (lua_State *L) {
  subp_Proc *p = checkproc(L);
  reap(p);
  return pushcode(L, p);
}


static void openpidfd (subp_Proc *p) {
#if defined(SYS_pidfd_open)
  if (p->pidfd < 0 && pidfd_ok()) {
    int fd = (int)syscall(SYS_pidfd_open, p->pid, 0);  /* always O_CLOEXEC */
    if (fd >= 0) p->pidfd = fd;
    else if (errno == ENOSYS || errno == EPERM) pidfd_set(0);
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
static void wait_end (lua_State *L, subp_Proc *p, double deadline,
                      double *delay) {
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
  subp_Proc *p = checkproc(L);
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
  subp_Proc *p = checkproc(L);
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
  subp_Proc *p = (subp_Proc *)lua_touserdata(L, 1);
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


subp_Proc *subp_newproc (lua_State *L) {
  subp_Proc *p = (subp_Proc *)lua_newuserdatauv(L, sizeof *p, 0);
  p->pid = 0;
  p->done = 1;
  p->code = 0;
  p->pidfd = -1;
  p->waiters = 0;
  luaL_setmetatable(L, PROC_MT);
  return p;
}


/* _subprocess._use_pidfd(on): tests reach the fallback of timed waits. */
static int l_use_pidfd (lua_State *L) {
  int old = pidfd_ok();
  if (!lua_isnoneornil(L, 1)) pidfd_set(lua_toboolean(L, 1));
  lua_pushboolean(L, old);
  return 1;
}


void subp_open_child (lua_State *L) {
  static const luaL_Reg meta[] = {{"__gc", proc_gc}, {NULL, NULL}};
  gilua_newclass(L, PROC_MT, proc_methods, meta);
  lua_pop(L, 1);
  lua_pushcfunction(L, l_use_pidfd);
  lua_setfield(L, -2, "_use_pidfd");
}
