/*
** mp.h: shared between the C files of _multiprocessing.
**
** The module is one C file per concern, each adding its functions and
** classes to the module table (mp_open_*, called by mp.c):
**   process.c      fork, spawn, exit, wait, signals
**   connection.c   frames over sockets, Connection and Pipe
**   synchronize.c  process-shared locks, semaphores, events (SemLock)
**   shared_memory.c  shared blocks: Value/Array memory and SharedMemory
**   queues.c       Queue: a socket, shared counters and a feeder thread
**   managers.c     Unix and TCP sockets: managers, Listener, Client
**   serialize.c    the format values travel in (dumps, loads)
*/
#ifndef mp_h
#define mp_h

#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>

#include "gilua_vm.h"

/*
** A growable byte buffer in a userdata (so an error frees it with the
** rest). Bytes may be read and written without the GIL while the userdata
** stays anchored on the stack.
*/
typedef struct mp_buf {
  char *p;
  size_t n, cap;
} mp_buf;

mp_buf *mp_newbuf(lua_State *L);        /* pushes the userdata */
void mp_bufreserve(lua_State *L, mp_buf *b, size_t extra);
void mp_bufadd(lua_State *L, mp_buf *b, const void *s, size_t len);

/* serialize.c: encodes the value at 'idx' at the end of 'b' (which is
** anchored elsewhere on the stack); raises TypeError naming the value that
** cannot travel. */
void mp_encode(lua_State *L, int idx, mp_buf *b);
/* Decodes one value from s[0..len) and pushes it; raises ValueError on
** malformed input. */
void mp_decode(lua_State *L, const char *s, size_t len);

int mp_open_serialize(lua_State *L);    /* dumps, loads into the table on top */
int mp_open_auth(lua_State *L);         /* hmac_sha256, compare_digest (auth.c) */


/*
** connection.c: frames are a u32 length (0xffffffff: a u64 length
** follows), then the bytes.
*/
/* Writes all of s[0..n) to fd without the GIL; 0 or an errno. With
** 'intr', Ctrl-C stops a wait for room (EINTR). */
int mp_write_all(int fd, const char *s, size_t n, int intr);
/* Reads exactly n bytes without the GIL; 0, -1 at end of file before any
** byte, or an errno (EPIPE for end of file in the middle). With 'intr',
** Ctrl-C stops the wait for the first byte (EINTR). */
int mp_read_all(int fd, char *s, size_t n, int intr);
/* Writes the header of a frame of 'len' bytes in h (room for 12 bytes) and
** returns its size, 4 or 12. */
size_t mp_header(char *h, size_t len);
/* Reads one frame into b (reset first), without the GIL; 0 or as
** mp_read_all, EMSGSIZE for a frame longer than maxlen (0: no limit).
** Ctrl-C stops the wait for the frame to begin (EINTR). */
int mp_read_frame(int fd, mp_buf *b, size_t maxlen);
/* Raises what mp_read_frame's result 'r' (not 0) means (KeyboardInterrupt
** for EINTR). */
int mp_read_error(lua_State *L, int r);
/* Whether fd becomes readable within 'timeout' seconds (< 0: no limit). */
int mp_poll_fd(lua_State *L, int fd, double timeout);
/* Pushes a new Connection on the descriptors (-1: none). */
void mp_newconn(lua_State *L, int rfd, int wfd);


/* shared_memory.c: a block of 'size' bytes on a new memfd (kept open in
** *fd, close-on-exec), shared across fork and passed to spawned children;
** or mapped from such a memfd (it must hold at least 'size' bytes). */
void *mp_shmalloc(lua_State *L, size_t size, int *fd);
void *mp_shmmap(lua_State *L, int fd, size_t size);


/*
** synchronize.c: a process-shared mutex and condition variable guarding a
** small state. Kinds: a semaphore (Lock is one with maximum 1), a
** recursive lock, an event.
*/
enum { MP_SEM, MP_RLOCK, MP_EVENT };

typedef struct mp_sync {
  pthread_mutex_t m;
  pthread_cond_t c;
  int kind;
  long value, maxvalue;        /* semaphore; event flag in value */
  pid_t opid;                  /* owner (locks) */
  pid_t otid;
  long count;                  /* rlock recursion */
} mp_sync;

void mp_sync_init(mp_sync *s, int kind);
/* The short internal mutex; a holder that died leaves it consistent. */
void mp_slock(mp_sync *s);
void mp_sunlock(mp_sync *s);
/* Waits on s->c (s->m held): 1 woken, 0 timed out, -1 Ctrl-C. */
int mp_swait(mp_sync *s, const struct timespec *deadline);


/* queues.c: what a forked child resets, and what a process that exits
** lets its feeders write first. */
typedef struct qlocal qlocal;
void mp_feeders_after_fork(void);
qlocal **mp_feeders_hold(int *n);
int mp_feeders_flush(qlocal **qs, int n);  /* without the GIL */


/* Each file adds its functions and classes to the module table on top. */
void mp_open_process(lua_State *L);
void mp_open_connection(lua_State *L);
void mp_open_synchronize(lua_State *L);
void mp_open_shared_memory(lua_State *L);
void mp_open_queues(lua_State *L);
void mp_open_managers(lua_State *L);

#endif
