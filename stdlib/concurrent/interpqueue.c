/*
** interpqueue.c: `_interpqueues`, the queues that interpreters share
** (concurrent.interpreters.create_queue).
**
** A queue lives outside every interpreter, in the process's memory, and
** each interpreter that has it holds a handle (a userdata). Threads of
** different interpreters hold different GILs, so the queue has a mutex
** and condition variables of its own, and its items are bytes: put
** encodes the item with the serializer (GIL held), get decodes it into the
** getter's interpreter. Nothing of one interpreter is ever seen by the
** other. Waits release the GIL.
**
** A queue is freed when no handle and no copy in transit is left: 'refs'
** counts both. A handle crossing to another interpreter (an argument of
** call, an item of a queue) is encoded as "rebuild the queue of this id",
** and the encoding takes a reference that the rebuilding handle inherits;
** a message that is never decoded keeps its queues alive.
**
** Lock order: a GIL, then 'qreg' or a queue's mutex; nobody waits for a
** GIL holding either.
*/
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "interp.h"

#define QUEUE_MT "concurrent.interpreters.Queue"
#define QEMPTY "concurrent.interpreters.QueueEmpty"
#define QFULL "concurrent.interpreters.QueueFull"

typedef struct item {
  struct item *next;
  size_t len;
  char *data;                   /* serialized, malloc'd */
} item;

typedef struct xq {
  pthread_mutex_t m;
  pthread_cond_t not_empty, not_full;
  lua_Integer id, maxsize, count;
  item *head, *tail;
  int refs;                     /* handles and copies in transit (qreg) */
  struct xq *next;              /* every queue (qreg) */
} xq;

static pthread_mutex_t qreg = PTHREAD_MUTEX_INITIALIZER;
static xq *queues;
static lua_Integer last_qid;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;


/* In a fork child only the forking thread is left: the list is whole (the
** forking thread held its lock), the queues' locks that other threads held
** are made anew. */
static void prepare (void) { pthread_mutex_lock(&qreg); }
static void parent (void) { pthread_mutex_unlock(&qreg); }

static void child (void) {
  xq *q;
  for (q = queues; q; q = q->next) {
    pthread_mutex_init(&q->m, NULL);
    gilua_cond_init(&q->not_empty);
    gilua_cond_init(&q->not_full);
  }
  pthread_mutex_unlock(&qreg);
}

static void set_atfork (void) { pthread_atfork(prepare, parent, child); }


static void item_free (item *it) {
  free(it->data);
  free(it);
}


/* Drops one reference (qreg held by nobody); the last one frees. */
static void unref (xq *q) {
  int last;
  pthread_mutex_lock(&qreg);
  last = (--q->refs == 0);
  if (last) {
    xq **p;
    for (p = &queues; *p; p = &(*p)->next)
      if (*p == q) { *p = q->next; break; }
  }
  pthread_mutex_unlock(&qreg);
  if (last) {
    while (q->head) {
      item *it = q->head;
      q->head = it->next;
      item_free(it);
    }
    pthread_mutex_destroy(&q->m);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
    free(q);
  }
}


/* A handle for 'q', which brings one reference along. */
static void pushhandle (lua_State *L, xq *q) {
  xq **u = lua_newuserdatauv(L, sizeof *u, 0);
  *u = q;
  luaL_setmetatable(L, QUEUE_MT);
}


static xq *toq (lua_State *L) {
  xq **u = luaL_checkudata(L, 1, QUEUE_MT);
  if (*u == NULL) luaL_error(L, "queue already released");
  return *u;
}


static int iq_new (lua_State *L) {
  lua_Integer maxsize = luaL_optinteger(L, 1, 0);
  xq *q;
  xq **u = lua_newuserdatauv(L, sizeof *u, 0);
  *u = NULL;
  luaL_setmetatable(L, QUEUE_MT);
  pthread_once(&atfork_once, set_atfork);
  if ((q = calloc(1, sizeof *q)) == NULL) return luaL_error(L, "not enough memory");
  pthread_mutex_init(&q->m, NULL);
  gilua_cond_init(&q->not_empty);
  gilua_cond_init(&q->not_full);
  q->maxsize = maxsize > 0 ? maxsize : 0;
  q->refs = 1;
  pthread_mutex_lock(&qreg);
  q->id = ++last_qid;
  q->next = queues;
  queues = q;
  pthread_mutex_unlock(&qreg);
  *u = q;
  return 1;
}


/* The queue of id 'id' (NULL if none), with one more reference if 'ref'. */
static xq *byid (lua_Integer id, int ref) {
  xq *q;
  pthread_mutex_lock(&qreg);
  for (q = queues; q; q = q->next)
    if (q->id == id) {
      q->refs += ref;
      break;
    }
  pthread_mutex_unlock(&qreg);
  return q;
}


/* get_by_id(id): a new handle on a queue that some handle still holds. */
static int iq_get_by_id (lua_State *L) {
  lua_Integer id = luaL_checkinteger(L, 1);
  xq *q = byid(id, 1);
  if (q == NULL) return gilua_raise(L, "KeyError", "no queue with id %d", (int)id);
  pushhandle(L, q);
  return 1;
}


/* _rebuild(id): the other end of a crossing; the reference comes with. */
static int iq_rebuild (lua_State *L) {
  lua_Integer id = luaL_checkinteger(L, 1);
  xq *q = byid(id, 0);
  if (q == NULL) return luaL_error(L, "queue %d is gone", (int)id);
  pushhandle(L, q);
  return 1;
}


/* __mp_reduce: only to another interpreter of this process. */
static int q_reduce (lua_State *L) {
  xq *q = toq(L);
  if (!ic_crossing(L))
    return gilua_raise(L, "concurrent.interpreters.NotShareableError",
                       "an interpreter queue cannot leave its process");
  pthread_mutex_lock(&qreg);
  q->refs++;
  pthread_mutex_unlock(&qreg);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushinteger(L, q->id);
  return 2;
}


static int q_gc (lua_State *L) {
  xq **u = luaL_checkudata(L, 1, QUEUE_MT);
  if (*u) unref(*u);
  *u = NULL;
  return 0;
}


/*
** The queue's critical sections. With 'wait', they sleep (q->m held, the
** GIL released by the caller) until they can go on or the deadline passes
** (NULL: none). Return 0, ETIMEDOUT (full/empty, or time up) or EINTR
** (Ctrl-C ended the main thread's wait).
*/
static int append (xq *q, item *it, int wait, const struct timespec *deadline) {
  int rc = 0;
  pthread_mutex_lock(&q->m);
  while (q->maxsize > 0 && q->count >= q->maxsize && rc == 0)
    rc = wait ? gilua_condwait(&q->not_full, &q->m, deadline) : ETIMEDOUT;
  if (!(q->maxsize > 0 && q->count >= q->maxsize)) {
    rc = 0;
    if (q->tail) q->tail->next = it;
    else q->head = it;
    q->tail = it;
    q->count++;
    pthread_cond_signal(&q->not_empty);
  }
  pthread_mutex_unlock(&q->m);
  return rc;
}


static int take (xq *q, item **it, int wait, const struct timespec *deadline) {
  int rc = 0;
  pthread_mutex_lock(&q->m);
  while (q->count == 0 && rc == 0)
    rc = wait ? gilua_condwait(&q->not_empty, &q->m, deadline) : ETIMEDOUT;
  if (q->count > 0) {
    rc = 0;
    *it = q->head;
    q->head = (*it)->next;
    if (q->head == NULL) q->tail = NULL;
    q->count--;
    if (q->maxsize > 0) pthread_cond_signal(&q->not_full);
  }
  pthread_mutex_unlock(&q->m);
  return rc;
}


static int q_put (lua_State *L) {
  xq *q = toq(L);
  int block, rc;
  double timeout;
  struct timespec deadline, *dl = NULL;
  mp_buf *b;
  item *it;
  luaL_checkany(L, 2);
  gilua_arg_block(L, 3, &block, &timeout);
  lua_settop(L, 2);
  b = mp_newbuf(L);
  ic_encode(L, 2, b, "the item");
  if ((it = malloc(sizeof *it)) == NULL) return luaL_error(L, "not enough memory");
  it->next = NULL;
  it->data = b->p;
  it->len = b->n;
  b->p = NULL;
  b->n = b->cap = 0;
  rc = append(q, it, 0, NULL);
  if (rc != 0 && block && timeout != 0) {
    if (timeout > 0) gilua_deadline(dl = &deadline, timeout);
    GILUA_BEGIN_ALLOW_THREADS(L)
      rc = append(q, it, 1, dl);
    GILUA_END_ALLOW_THREADS(L)
  }
  if (rc != 0) {
    item_free(it);
    if (rc == EINTR) gilua_checkinterrupt(L);
    return gilua_raise(L, QFULL, NULL);
  }
  return 0;
}


static int q_get (lua_State *L) {
  xq *q = toq(L);
  int block, rc;
  double timeout;
  struct timespec deadline, *dl = NULL;
  item *it = NULL;
  mp_buf *b;
  gilua_arg_block(L, 2, &block, &timeout);
  b = mp_newbuf(L);                     /* frees the item's bytes */
  rc = take(q, &it, 0, NULL);
  if (rc != 0 && block && timeout != 0) {
    if (timeout > 0) gilua_deadline(dl = &deadline, timeout);
    GILUA_BEGIN_ALLOW_THREADS(L)
      rc = take(q, &it, 1, dl);
    GILUA_END_ALLOW_THREADS(L)
  }
  if (rc != 0) {
    if (rc == EINTR) gilua_checkinterrupt(L);
    return gilua_raise(L, QEMPTY, NULL);
  }
  b->p = it->data;
  b->n = b->cap = it->len;
  free(it);
  mp_decode(L, b->p, b->n);
  return 1;
}


static int q_put_nowait (lua_State *L) {
  lua_settop(L, 2);
  lua_pushboolean(L, 0);
  return q_put(L);
}


static int q_get_nowait (lua_State *L) {
  lua_settop(L, 1);
  lua_pushboolean(L, 0);
  return q_get(L);
}


static lua_Integer count (xq *q) {
  lua_Integer n;
  pthread_mutex_lock(&q->m);
  n = q->count;
  pthread_mutex_unlock(&q->m);
  return n;
}


static int q_qsize (lua_State *L) {
  lua_pushinteger(L, count(toq(L)));
  return 1;
}


static int q_empty (lua_State *L) {
  lua_pushboolean(L, count(toq(L)) == 0);
  return 1;
}


static int q_full (lua_State *L) {
  xq *q = toq(L);
  lua_pushboolean(L, q->maxsize > 0 && count(q) >= q->maxsize);
  return 1;
}


/* Fields id and maxsize, then the methods (upvalue 1: the metatable). */
static int q_index (lua_State *L) {
  xq *q = toq(L);
  const char *k = lua_tostring(L, 2);
  if (k != NULL && strcmp(k, "id") == 0) lua_pushinteger(L, q->id);
  else if (k != NULL && strcmp(k, "maxsize") == 0) lua_pushinteger(L, q->maxsize);
  else {
    lua_getfield(L, lua_upvalueindex(1), "methods");
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
  }
  return 1;
}


static int q_tostring (lua_State *L) {
  lua_pushfstring(L, "<concurrent.interpreters.Queue id=%d>", (int)toq(L)->id);
  return 1;
}


static int q_eq (lua_State *L) {
  xq **a = luaL_testudata(L, 1, QUEUE_MT), **b = luaL_testudata(L, 2, QUEUE_MT);
  lua_pushboolean(L, a && b && *a == *b);
  return 1;
}


static int iq_isqueue (lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, QUEUE_MT) != NULL);
  return 1;
}


static const luaL_Reg methods[] = {
  {"put", q_put}, {"get", q_get}, {"put_nowait", q_put_nowait},
  {"get_nowait", q_get_nowait}, {"qsize", q_qsize}, {"empty", q_empty},
  {"full", q_full}, {NULL, NULL}
};

static const luaL_Reg meta[] = {
  {"__index", q_index}, {"__gc", q_gc}, {"__tostring", q_tostring},
  {"__eq", q_eq}, {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"new", iq_new}, {"get_by_id", iq_get_by_id}, {"_rebuild", iq_rebuild},
  {"isqueue", iq_isqueue}, {NULL, NULL}
};


int luaopen_gilua_interpqueues (lua_State *L) {
  luaL_newlib(L, funcs);
  gilua_newclass(L, QUEUE_MT, methods, meta);
  lua_getfield(L, -2, "_rebuild");      /* what a crossing handle names */
  lua_pushcclosure(L, q_reduce, 1);
  lua_setfield(L, -2, "__mp_reduce");
  lua_pop(L, 1);
  return 1;
}
