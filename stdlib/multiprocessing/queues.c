/*
** queues.c: multiprocessing.Queue's core: a socket, locks and counters in
** shared memory, and per process a feeder thread (plain C, no Lua) that
** writes the frames put() queued, so put() never blocks on a full socket
** (Python's design). Items are serialized by put() itself, so later
** changes to an item do not travel.
*/
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "mp.h"


#define QUEUE_MT "_multiprocessing.Queue"

typedef struct qshared {
  mp_sync s;                    /* count, maxsize, unfinished; not full / done */
  pthread_mutex_t rlock, wlock;
  long count, maxsize, unfinished;
} qshared;

struct qlocal {
  qshared *sh;
  int rfd, wfd;
  int shfd;                    /* memfd of 'sh', for spawned children */
  pthread_mutex_t m;
  pthread_cond_t c, drained;
  char *pend;                  /* frames not written yet */
  size_t npend, cappend;
  int feeder, running, writing, waiting, closed, ignore, refs;
  struct qlocal *next;         /* all queues of this process (allq_lock) */
};

/* The queues of every interpreter of the process, under their own lock,
** which a fork holds (so that the list is whole in the child). */
static qlocal *allqueues;
static pthread_mutex_t allq_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t allq_once = PTHREAD_ONCE_INIT;

static void allq_prepare (void) { pthread_mutex_lock(&allq_lock); }
static void allq_release (void) { pthread_mutex_unlock(&allq_lock); }
static void allq_init (void) {
  pthread_atfork(allq_prepare, allq_release, allq_release);
}


static void q_free (qlocal *q) {
  if (q->rfd >= 0) close(q->rfd);
  if (q->wfd >= 0) close(q->wfd);
  if (q->shfd >= 0) close(q->shfd);
  munmap(q->sh, sizeof *q->sh);
  free(q->pend);
  pthread_mutex_destroy(&q->m);
  pthread_cond_destroy(&q->c);
  pthread_cond_destroy(&q->drained);
  free(q);
}


/*
** A call that waits without the GIL holds a reference, as the feeder
** does: when the interpreter closes, its finalizer runs while a daemon
** thread may still be inside such a wait (Queue.get behind another
** reader, at Ctrl-C). Freed then, the queue's descriptors would close
** under it (its read ends at end of file) and its shared memory would go
** from under the mutex it unlocks next. Held, the queue outlives the
** finalizer, the daemon stays asleep, and the process ends around it.
*/
static void q_hold (qlocal *q) {
  pthread_mutex_lock(&q->m);
  q->refs++;
  pthread_mutex_unlock(&q->m);
}


static void q_drop (qlocal *q) {
  int last;
  pthread_mutex_lock(&q->m);
  last = --q->refs == 0;
  pthread_mutex_unlock(&q->m);
  if (last) q_free(q);
}


static void q_unlink (qlocal *q) {
  qlocal **p;
  pthread_mutex_lock(&allq_lock);
  for (p = &allqueues; *p; p = &(*p)->next)
    if (*p == q) { *p = q->next; break; }
  pthread_mutex_unlock(&allq_lock);
}


static void robust_lock (pthread_mutex_t *m) {
  if (pthread_mutex_lock(m) == EOWNERDEAD) pthread_mutex_consistent(m);
}


static void *feeder (void *ud) {
  qlocal *q = ud;
  char *buf = NULL;
  size_t cap = 0, n;
  pthread_mutex_lock(&q->m);
  q->running = 1;
  pthread_cond_broadcast(&q->drained);
  for (;;) {
    while (q->npend == 0 && !q->closed) {
      q->waiting = 1;
      pthread_cond_wait(&q->c, &q->m);
      q->waiting = 0;
    }
    if (q->npend == 0) break;
    {  /* take the pending frames, leave our empty buffer in their place */
      char *t = q->pend;
      size_t tc = q->cappend;
      n = q->npend;
      q->pend = buf; q->cappend = cap; q->npend = 0;
      buf = t; cap = tc;
    }
    q->writing = 1;
    pthread_mutex_unlock(&q->m);
    robust_lock(&q->sh->wlock);
    mp_write_all(q->wfd, buf, n, 0);  /* a reader gone: the items are lost */
    pthread_mutex_unlock(&q->sh->wlock);
    pthread_mutex_lock(&q->m);
    q->writing = 0;
    pthread_cond_broadcast(&q->drained);
  }
  free(buf);
  q->feeder = q->running = 0;
  pthread_cond_broadcast(&q->drained);
  pthread_mutex_unlock(&q->m);
  q_drop(q);
  return NULL;
}


/* In a new child: the feeders stayed in the parent, and so did their
** pending frames (the parent writes them). */
void mp_feeders_after_fork (void) {
  qlocal *q;
  for (q = allqueues; q; q = q->next) {
    pthread_mutex_init(&q->m, NULL);
    gilua_cond_init(&q->c);
    gilua_cond_init(&q->drained);
    q->pend = NULL;
    q->npend = q->cappend = 0;
    q->feeder = q->running = q->writing = q->waiting = 0;
    q->refs = 1;
  }
}


/* Waits, without the GIL, until the feeder has written what it holds;
** EINTR if Ctrl-C stopped the wait (main thread). */
static int q_drain (qlocal *q) {
  int rc = 0;
  pthread_mutex_lock(&q->m);
  while (rc != EINTR && !q->ignore && q->feeder && (q->npend > 0 || q->writing))
    rc = gilua_condwait(&q->drained, &q->m, NULL);
  pthread_mutex_unlock(&q->m);
  return rc;
}


/* The live queues, each held (refs) so that a collection in another thread
** cannot free one while it is drained without the GIL. */
qlocal **mp_feeders_hold (int *n) {
  qlocal *q, **qs;
  int k = 0;
  pthread_mutex_lock(&allq_lock);
  for (q = allqueues; q; q = q->next) k++;
  pthread_mutex_unlock(&allq_lock);
  *n = 0;
  if (k == 0 || (qs = malloc((size_t)k * sizeof *qs)) == NULL) return NULL;
  pthread_mutex_lock(&allq_lock);
  for (q = allqueues; q && *n < k; q = q->next) {
    pthread_mutex_lock(&q->m);
    q->refs++;
    pthread_mutex_unlock(&q->m);
    qs[(*n)++] = q;
  }
  pthread_mutex_unlock(&allq_lock);
  return qs;
}


/* Before a process exits: what its feeders hold reaches the sockets.
** Without the GIL. */
int mp_feeders_flush (qlocal **qs, int n) {
  int i;
  for (i = 0; i < n; i++)
    if (q_drain(qs[i]) == EINTR) return EINTR;
  return 0;
}


static void feeders_unhold (qlocal **qs, int n) {
  int i;
  for (i = 0; i < n; i++) q_drop(qs[i]);
  free(qs);
}


static int l_flush_feeders (lua_State *L) {
  int n;
  int rc;
  qlocal **qs = mp_feeders_hold(&n);
  GILUA_BEGIN_ALLOW_THREADS(L)
    rc = mp_feeders_flush(qs, n);
  GILUA_END_ALLOW_THREADS(L)
  feeders_unhold(qs, n);
  if (rc == EINTR) gilua_checkinterrupt(L);
  return 0;
}


static qlocal *checkq (lua_State *L) {
  qlocal **u = luaL_checkudata(L, 1, QUEUE_MT);
  if (*u == NULL) gilua_raise(L, "ValueError", "Queue is closed");
  return *u;
}


/* A queue's local side on descriptors: the socket's two ends and the
** memfd of the shared block (the block is created when 'create'). */
static int q_make (lua_State *L, int rfd, int wfd, int shfd, int create,
                   lua_Integer maxsize) {
  qlocal **u = lua_newuserdatauv(L, sizeof *u, 0);
  qlocal *q;
  *u = NULL;
  luaL_setmetatable(L, QUEUE_MT);
  q = calloc(1, sizeof *q);
  if (q == NULL) return luaL_error(L, "not enough memory");
  q->sh = mmap(NULL, sizeof *q->sh, PROT_READ | PROT_WRITE, MAP_SHARED, shfd, 0);
  if (q->sh == MAP_FAILED) {
    int e = errno;
    free(q);
    return gilua_oserror(L, e, "mmap", NULL);
  }
  if (create) {
    pthread_mutexattr_t ma;
    mp_sync_init(&q->sh->s, MP_SEM);
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&q->sh->rlock, &ma);
    pthread_mutex_init(&q->sh->wlock, &ma);
    pthread_mutexattr_destroy(&ma);
    q->sh->maxsize = maxsize > 0 ? (long)maxsize : 0;
  }
  q->rfd = rfd;
  q->wfd = wfd;
  q->shfd = shfd;
  pthread_mutex_init(&q->m, NULL);
  gilua_cond_init(&q->c);
  gilua_cond_init(&q->drained);
  q->refs = 1;
  pthread_once(&allq_once, allq_init);
  pthread_mutex_lock(&allq_lock);
  q->next = allqueues;
  allqueues = q;
  pthread_mutex_unlock(&allq_lock);
  *u = q;
  return 1;
}


/* queue(maxsize) */
static int l_queue (lua_State *L) {
  lua_Integer maxsize = luaL_optinteger(L, 1, 0);
  int sv[2], shfd;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return gilua_oserror(L, errno, "socketpair", NULL);
  shfd = memfd_create("gilua-queue", MFD_CLOEXEC);
  if (shfd < 0 || ftruncate(shfd, sizeof(qshared)) != 0) {
    int e = errno;
    close(sv[0]); close(sv[1]);
    if (shfd >= 0) close(shfd);
    return gilua_oserror(L, e, "memfd_create", NULL);
  }
  shutdown(sv[0], SHUT_WR);
  shutdown(sv[1], SHUT_RD);
  return q_make(L, sv[0], sv[1], shfd, 1, maxsize);
}


/* queue_from(rfd, wfd, shfd): a queue passed to a spawned child */
static int l_queue_from (lua_State *L) {
  return q_make(L, (int)luaL_checkinteger(L, 1), (int)luaL_checkinteger(L, 2),
                (int)luaL_checkinteger(L, 3), 0, 0);
}


static int q_fds (lua_State *L);


static int q_gc (lua_State *L) {
  qlocal **u = luaL_checkudata(L, 1, QUEUE_MT);
  qlocal *q = *u;
  if (q == NULL) return 0;
  *u = NULL;
  q_unlink(q);
  pthread_mutex_lock(&q->m);
  q->closed = 1;
  pthread_cond_signal(&q->c);
  pthread_mutex_unlock(&q->m);
  q_drop(q);  /* a feeder or a waiting call may drop it last */
  return 0;
}


/* put(item, block, timeout) */
static int q_put (lua_State *L) {
  qlocal *q = checkq(L);
  qshared *sh = q->sh;
  int block = lua_isnoneornil(L, 3) ? 1 : lua_toboolean(L, 3);
  double timeout = gilua_timeout(L, 4, "Queue.put", NULL, GILUA_NEG_ZERO);
  struct timespec ts, *dl = NULL;
  int ok = 1, intr = 0, err = 0;
  mp_buf *b;
  char h[12];
  size_t k;
  if (q->closed) return gilua_raise(L, "ValueError", "Queue is closed");
  lua_settop(L, 2);
  b = mp_newbuf(L);
  mp_bufreserve(L, b, 4);
  b->n = 4;
  mp_encode(L, 2, b);
  k = mp_header(h, b->n - 4);
  if (k != 4) {
    mp_bufreserve(L, b, 8);
    memmove(b->p + 12, b->p + 4, b->n - 4);
    b->n += 8;
  }
  memcpy(b->p, h, k);
  if (!block) timeout = 0;
  if (timeout >= 0) { gilua_deadline(&ts, timeout); dl = &ts; }
  q_hold(q);
  GILUA_BEGIN_ALLOW_THREADS(L)
    mp_slock(&sh->s);
    while (sh->maxsize > 0 && sh->count >= sh->maxsize) {
      int w;
      if (timeout == 0) { ok = 0; break; }
      w = mp_swait(&sh->s, dl);
      if (w == 0) { ok = 0; break; }
      if (w < 0) { ok = 0; intr = 1; break; }
    }
    if (ok) { sh->count++; sh->unfinished++; }
    mp_sunlock(&sh->s);
    if (ok) {
      pthread_mutex_lock(&q->m);
      if (q->npend + b->n > q->cappend) {
        size_t cap = q->cappend ? q->cappend : 4096;
        char *p;
        while (cap < q->npend + b->n) cap *= 2;
        p = realloc(q->pend, cap);
        if (p == NULL) err = ENOMEM;
        else { q->pend = p; q->cappend = cap; }
      }
      if (!err) {
        memcpy(q->pend + q->npend, b->p, b->n);
        q->npend += b->n;
        if (!q->feeder) {
          pthread_t t;
          pthread_attr_t at;
          pthread_attr_init(&at);
          pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
          if (pthread_create(&t, &at, feeder, q) == 0) {
            q->feeder = 1;
            q->refs++;
            /* Until it runs, the new thread may be inside the C library's
            ** (or a sanitizer's) thread set-up: a fork then could leave a
            ** lock held in the child. It is a one-time wait. */
            while (!q->running) pthread_cond_wait(&q->drained, &q->m);
          }
          else err = EAGAIN;
          pthread_attr_destroy(&at);
        }
        else if (q->waiting) pthread_cond_signal(&q->c);
      }
      pthread_mutex_unlock(&q->m);
    }
    q_drop(q);
  GILUA_END_ALLOW_THREADS(L)
  if (intr) gilua_checkinterrupt(L);
  if (err) return gilua_oserror(L, err, "Queue.put", NULL);
  if (!ok) return gilua_raise(L, "queue.Full", NULL);
  return 0;
}


/*
** Takes the readers' lock (another process may hold it while it waits for
** an item) before 'deadline' (monotonic; < 0: none): 0, EBUSY once the
** deadline has passed, or EINTR for Ctrl-C. The wait goes in slices, so
** that Ctrl-C is seen; pthread_mutex_timedlock counts in CLOCK_REALTIME.
*/
#define SLICE 0.05

static int take_rlock (pthread_mutex_t *m, double deadline) {
  for (;;) {
    double now = gilua_monotonic(), until = deadline;
    int r;
    if (gilua_interrupt_pending()) return EINTR;
    if (deadline >= 0 && deadline <= now) r = pthread_mutex_trylock(m);
    else {
      struct timespec ts;
      double frac;
      if (until < 0 || until > now + SLICE) until = now + SLICE;
      clock_gettime(CLOCK_REALTIME, &ts);
      frac = ts.tv_nsec / 1e9 + (until - now);
      ts.tv_sec += (time_t)frac;
      ts.tv_nsec = (long)((frac - (double)(time_t)frac) * 1e9);
      r = pthread_mutex_timedlock(m, &ts);
      if (r == ETIMEDOUT) continue;
    }
    if (r == EOWNERDEAD) {
      pthread_mutex_consistent(m);
      r = 0;
    }
    return r;
  }
}


/* get(block, timeout) */
static int q_get (lua_State *L) {
  qlocal *q = checkq(L);
  qshared *sh = q->sh;
  int block = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
  double timeout = gilua_timeout(L, 3, "Queue.get", NULL, GILUA_NEG_ZERO), deadline;
  int got = 0, r = 0, fd = q->rfd;
  mp_buf *b;
  if (fd < 0) return gilua_raise(L, "ValueError", "Queue is closed");
  if (!block) timeout = 0;
  deadline = gilua_deadline_after(timeout);
  lua_settop(L, 1);
  b = mp_newbuf(L);
  q_hold(q);
  GILUA_BEGIN_ALLOW_THREADS(L)
    int lr = take_rlock(&sh->rlock, deadline);
    if (lr == EINTR) r = EINTR;
    else if (lr == 0) {
      struct pollfd p;
      int ready = 1;  /* no deadline: the frame's read waits (for Ctrl-C too) */
      p.fd = fd;
      p.events = POLLIN;
      p.revents = 0;
      if (deadline >= 0) ready = gilua_waitfds(&p, 1, deadline);
      if (ready > 0) {
        r = mp_read_frame(fd, b, SIZE_MAX);
        got = r == 0;
      }
      else if (ready < 0) r = errno;
      pthread_mutex_unlock(&sh->rlock);
      if (got) {
        mp_slock(&sh->s);
        sh->count--;
        pthread_cond_broadcast(&sh->s.c);
        mp_sunlock(&sh->s);
      }
    }
    q_drop(q);
  GILUA_END_ALLOW_THREADS(L)
  if (r != 0) return mp_read_error(L, r);
  if (!got) return gilua_raise(L, "queue.Empty", NULL);
  mp_decode(L, b->p, b->n);
  return 1;
}


static int q_qsize (lua_State *L) {
  qlocal *q = checkq(L);
  long n;
  mp_slock(&q->sh->s);
  n = q->sh->count;
  mp_sunlock(&q->sh->s);
  lua_pushinteger(L, n);
  return 1;
}


static int q_empty (lua_State *L) {
  qlocal *q = checkq(L);
  if (q->rfd < 0) return gilua_raise(L, "ValueError", "Queue is closed");
  lua_pushboolean(L, !mp_poll_fd(L, q->rfd, 0));
  return 1;
}


static int q_full (lua_State *L) {
  qlocal *q = checkq(L);
  int f;
  mp_slock(&q->sh->s);
  f = q->sh->maxsize > 0 && q->sh->count >= q->sh->maxsize;
  mp_sunlock(&q->sh->s);
  lua_pushboolean(L, f);
  return 1;
}


/* close(): no more puts from this process; the feeder ends once drained. */
static int q_close (lua_State *L) {
  qlocal *q = checkq(L);
  pthread_mutex_lock(&q->m);
  q->closed = 1;
  pthread_cond_signal(&q->c);
  pthread_mutex_unlock(&q->m);
  return 0;
}


static int q_join_thread (lua_State *L) {
  qlocal *q = checkq(L);
  int rc = 0;
  q_hold(q);
  GILUA_BEGIN_ALLOW_THREADS(L)
    pthread_mutex_lock(&q->m);
    while (rc != EINTR && q->feeder && (q->npend > 0 || q->writing || q->closed))
      rc = gilua_condwait(&q->drained, &q->m, NULL);
    pthread_mutex_unlock(&q->m);
    q_drop(q);
  GILUA_END_ALLOW_THREADS(L)
  if (rc == EINTR) gilua_checkinterrupt(L);
  return 0;
}


static int q_cancel_join_thread (lua_State *L) {
  qlocal *q = checkq(L);
  pthread_mutex_lock(&q->m);
  q->ignore = 1;
  pthread_mutex_unlock(&q->m);
  return 0;
}


static int q_task_done (lua_State *L) {
  qlocal *q = checkq(L);
  qshared *sh = q->sh;
  int bad = 0;
  mp_slock(&sh->s);
  if (sh->unfinished <= 0) bad = 1;
  else if (--sh->unfinished == 0) pthread_cond_broadcast(&sh->s.c);
  mp_sunlock(&sh->s);
  if (bad) return gilua_raise(L, "ValueError", "task_done() called too many times");
  return 0;
}


static int q_join (lua_State *L) {
  qlocal *q = checkq(L);
  qshared *sh = q->sh;
  int intr = 0;
  q_hold(q);
  GILUA_BEGIN_ALLOW_THREADS(L)
    mp_slock(&sh->s);
    while (sh->unfinished > 0)
      if (mp_swait(&sh->s, NULL) < 0) { intr = 1; break; }
    mp_sunlock(&sh->s);
    q_drop(q);
  GILUA_END_ALLOW_THREADS(L)
  if (intr) gilua_checkinterrupt(L);
  return 0;
}


static int q_fds (lua_State *L) {
  qlocal *q = checkq(L);
  lua_pushinteger(L, q->rfd);
  lua_pushinteger(L, q->wfd);
  lua_pushinteger(L, q->shfd);
  return 3;
}


static int q_fileno (lua_State *L) {
  qlocal *q = checkq(L);
  lua_pushinteger(L, q->rfd);
  return 1;
}


static const luaL_Reg q_methods[] = {
  {"put", q_put},
  {"get", q_get},
  {"qsize", q_qsize},
  {"empty", q_empty},
  {"full", q_full},
  {"close", q_close},
  {"join_thread", q_join_thread},
  {"cancel_join_thread", q_cancel_join_thread},
  {"task_done", q_task_done},
  {"join", q_join},
  {"_reader", q_fileno},
  {"_fds", q_fds},
  {NULL, NULL}
};



static const luaL_Reg funcs[] = {
  {"queue", l_queue},
  {"queue_from", l_queue_from},
  {"flush_feeders", l_flush_feeders},
  {NULL, NULL}
};


void mp_open_queues (lua_State *L) {
  static const luaL_Reg meta[] = {{"__gc", q_gc}, {NULL, NULL}};
  gilua_newclass(L, QUEUE_MT, q_methods, meta);
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
}
