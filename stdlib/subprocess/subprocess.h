/*
** subprocess.h: shared between the C files of _subprocess.
**
** The module is one C file per concern; all but pipes.c add their
** functions and classes to the module table (subp_open_*, called by
** subprocess.c):
**   pipes.c        our ends of a child's pipes as Lua files; SIGPIPE
**   child.c        a started child: reaping, waiting, signals
**   spawn.c        starting a child with posix_spawn
**   communicate.c  the multiplexed exchange behind Popen.communicate
** They call one another downwards only: spawn.c uses child.c and
** pipes.c, communicate.c uses pipes.c, subprocess.c opens them all.
*/
#ifndef subprocess_h
#define subprocess_h

#include <signal.h>
#include <stdio.h>
#include <sys/types.h>

#include "gilua_vm.h"

/* Python's values, so that a descriptor number (>= 0) is never mistaken. */
#define SPEC_PIPE     (-1)
#define SPEC_STDOUT   (-2)
#define SPEC_DEVNULL  (-3)
#define SPEC_INHERIT  (-100)


/*
** pipes.c: SIGPIPE is blocked in the calling thread around our writes to
** a child; one that they raised meanwhile is dropped before it is
** unblocked. subp_sigpipe_block returns whether it was unblocked before,
** which subp_sigpipe_restore takes as 'unblock'. errno is kept.
*/
int subp_sigpipe_block(sigset_t *old);
void subp_sigpipe_restore(const sigset_t *old, int unblock);

/*
** liolib's luaL_Stream (io functions look at that part only) plus the
** descriptor, which fileno() cannot tell for the cookie stream of a
** child's stdin.
*/
typedef struct subp_Stream {
  luaL_Stream ls;
  int fd;
} subp_Stream;

/* Pushes a closed file handle, to be opened once the descriptor exists
** (making it cannot fail then). */
subp_Stream *subp_newstream(lua_State *L);
/* A FILE on our end of a pipe (NULL and errno on failure); Python's
** bufsize: 0 unbuffered, 1 line buffered, n > 1 a buffer of n bytes,
** negative stdio's default. */
FILE *subp_openstream(int fd, int writing, lua_Integer bufsize);
/* The closef of our pipe ends: fclose without the GIL. */
int subp_stream_close(lua_State *L);
/* The descriptor behind an open Lua file handle, or -1. */
int subp_handle_fd(luaL_Stream *p);
/* The Lua file handle at 'idx' if it is one and open, else NULL. */
luaL_Stream *subp_openhandle(lua_State *L, int idx);
/* Closes *fd if it is open and marks it closed (-1). */
void subp_closefd(int *fd);


/* child.c: a child, as the userdata of class "_subprocess.process". */
typedef struct subp_Proc {
  pid_t pid;
  int done;          /* collected: 'code' is the returncode */
  int code;
  int pidfd;         /* for timed waits, or -1 */
  int waiters;       /* threads waiting on 'pidfd' without the GIL */
} subp_Proc;

/* Pushes a process not started yet (collected, returncode 0): spawn.c
** sets 'pid' and clears 'done' once the child runs. */
subp_Proc *subp_newproc(lua_State *L);
/* Reaps the children whose process was collected while they ran
** (Python's _cleanup); under the GIL, before a new child starts. */
void subp_zombies_reap(void);


/* Each file adds its functions and classes to the module table on top. */
void subp_open_child(lua_State *L);
void subp_open_spawn(lua_State *L);
void subp_open_communicate(lua_State *L);

#endif
