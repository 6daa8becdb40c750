/*
** queue.c: the C core of the queue module, `_queue`. queue.lua makes
** Python's classes (Queue, LifoQueue, PriorityQueue, SimpleQueue) on it;
** concurrent.futures uses the bare object as its work queue.
**
** A queue's state is only read or written by a thread that holds the GIL,
** so the put/get fast paths take no lock and allocate nothing: the items
** live in a Lua table (the userdata's first user value) whose array part
** is sized once per growth, and the queue keeps its own head and count,
** so a nil item is simply an empty slot. Blocked callers sleep on three
** gilua_waitq (not_empty, not_full, all_done), without the GIL.
**
** Kinds: FIFO is a ring buffer (slot of the i-th oldest item:
** (head + i) % cap + 1); LIFO a stack in slots 1..count; PRIO a binary
** heap in slots 1..count, ordered by key (the item, or t[1] for a plain
** table {priority, value}) and then by insertion number; SIMPLE is FIFO
** without maxsize, task accounting or shutdown (Python's SimpleQueue).
**
** Lua code may run in the middle of an operation: a __lt metamethod while
** the heap compares keys, or a finalizer run by the garbage collector when
** the slot table grows. That code may hand the GIL over, and other
** threads may then change the queue. So the code never keeps a decision
** across such a point: growth re-checks after allocating, and the heap
** compares first, moving nothing, then checks 'version' (bumped by every
** change) before moving anything; if it moved, the operation starts over.
*/
#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "gilua_vm.h"

#define QUEUE_MT "_queue.queue"
#define MINCAP 8

enum { FIFO, LIFO, PRIO, SIMPLE };
static const char *const kinds[] = {"fifo", "lifo", "priority", "simple", NULL};

typedef struct queue {
  int kind;
  int shutdown;
  lua_Integer maxsize;          /* <= 0: unbounded */
  lua_Integer head;             /* FIFO: 0-based slot index of the oldest item */
  lua_Integer count, cap;       /* items held, slots in the tables */
  lua_Integer unfinished;       /* puts not yet matched by task_done */
  lua_Integer nextseq;          /* PRIO: insertion counter */
  lua_Integer *seq;             /* PRIO: seq[i] = insertion number of slot i */
  unsigned long version;        /* bumped by every change */
  atomic_ulong stamp;           /* 'version', published for spinners */
  int spinners;                 /* getters spinning (see spin) */
  gilua_waitq not_empty, not_full, all_done;
} queue;

/* User values of the userdata */
#define ITEMS 1
#define KEYS 2                  /* PRIO only */


/*
** Methods get the queue userdata itself or an instance of queue.lua's
** classes, which keeps it in its field _q. The userdata is put at index 1,
** where it stays anchored while the call sleeps. Upvalue 1 is the
** metatable (cheaper than luaL_checkudata's registry lookup).
*/
static queue *toqueue (lua_State *L) {
  queue *q;
  if (lua_type(L, 1) == LUA_TTABLE) {
    lua_getfield(L, 1, "_q");
    lua_replace(L, 1);
  }
  q = lua_touserdata(L, 1);
  if (q == NULL || !lua_getmetatable(L, 1)
      || !lua_rawequal(L, -1, lua_upvalueindex(1)))
    luaL_error(L, "queue method called without a queue (use q:method(...), not q.method(...))");
  lua_pop(L, 1);
  return q;
}


/* Sleeps on 'wq' until a wake-up or the deadline (set by the caller's
** spin, the first wait); 0 once the time is up. A timeout of 0 never
** sleeps. */
static int await (lua_State *L, gilua_waitq *wq, double timeout,
                  double until) {
  if (timeout == 0) return 0;
  return gilua_waitq_wait(L, wq, until);
}


/*
** Spinning. A put that wakes a sleeping getter is expensive, and more so
** when both threads share a CPU: the woken thread preempts its waker at
** once, finds the GIL (or the wait queue's mutex) still held, and goes
** back to sleep; a ping-pong round trip measured 7 context switches. So a
** thread about to wait for an item (or a free slot) first spins a little,
** GIL released, yielding the CPU and watching the queue's 'stamp'; a putter
** then has nobody to wake. When the stamp moves, the spinner keeps yielding
** (a few microseconds at most) until 'released' moves too, which tells
** that some queue caller has just let the GIL go, so that taking it back
** costs no sleep. Once per call, never beyond the caller's deadline; then
** the thread sleeps on the gilua_waitq as usual. Not under the
** deterministic scheduler: there a thread waits where the scheduler sees
** it, and a spin would be a call outside.
*/
#define SPIN_SECS 20e-6         /* waiting for the queue to change */
#define HANDOFF_SECS 10e-6      /* then waiting for the GIL to be let go */

static atomic_ulong released;   /* times a queue caller let the GIL go to wait */


static void publish (queue *q) {
  q->version++;
  atomic_store_explicit(&q->stamp, q->version, memory_order_release);
}


/* The first wait of a call: sets its deadline, then spins (GIL released)
** until the queue changes or SPIN_SECS pass. */
static void spin (lua_State *L, queue *q, double timeout, double *until) {
  unsigned long seen = q->version, mine;
  double limit = timeout >= 0 && timeout < SPIN_SECS ? timeout : SPIN_SECS;
  if (timeout == 0) return;
  *until = gilua_until(timeout);
  if (gilua_sched_on(gilua_ts())) return;
  q->spinners++;
  GILUA_BEGIN_ALLOW_THREADS(L)
    double t0 = gilua_monotonic();
    mine = atomic_fetch_add_explicit(&released, 1, memory_order_acq_rel) + 1;
    do {
      /* yield rather than pause: the thread we wait for may need our CPU */
      sched_yield();
      if (atomic_load_explicit(&q->stamp, memory_order_acquire) != seen) {
        t0 = gilua_monotonic();
        do {
          sched_yield();
          if (atomic_load_explicit(&released, memory_order_acquire) != mine) break;
        } while (gilua_monotonic() - t0 < HANDOFF_SECS);
        break;
      }
    } while (gilua_monotonic() - t0 < limit);
  GILUA_END_ALLOW_THREADS(L)
  q->spinners--;
}


/*
** Growth: new tables twice as large, the items copied in order to slots
** 1..count (head back to 0). The allocations come first and may run Lua
** (finalizers); so the caller loops and checks everything again after.
*/
static void grow (lua_State *L, queue *q) {
  lua_Integer n, i, *seq;
  int prio = q->kind == PRIO;
  if (q->cap > INT_MAX / 2) luaL_error(L, "queue too large");
  n = q->cap * 2;
  lua_createtable(L, (int)n, 0);
  if (prio) lua_createtable(L, (int)n, 0);
  if (q->cap >= n) {            /* someone else grew it meanwhile */
    lua_pop(L, prio ? 2 : 1);
    return;
  }
  if (prio) {
    seq = realloc(q->seq, (size_t)(n + 1) * sizeof *seq);
    if (seq == NULL) luaL_error(L, "not enough memory");
    q->seq = seq;
  }
  lua_getiuservalue(L, 1, ITEMS);
  if (prio) lua_getiuservalue(L, 1, KEYS);
  for (i = 0; i < q->count; i++) {
    lua_Integer from = (q->head + i) % q->cap + 1;
    if (prio) {                 /* stack: items', keys', items, keys */
      lua_rawgeti(L, -1, from);
      lua_rawseti(L, -4, i + 1);
    }
    lua_rawgeti(L, prio ? -2 : -1, from);
    lua_rawseti(L, prio ? -5 : -3, i + 1);
  }
  lua_pop(L, prio ? 2 : 1);
  if (prio) lua_setiuservalue(L, 1, KEYS);
  lua_setiuservalue(L, 1, ITEMS);
  q->head = 0;
  q->cap = n;
  publish(q);
}


/* Is the entry (key at stack index ka, insertion number sa) before
** (kb, sb)? May run __lt metamethods, hence Lua code. */
static int before (lua_State *L, int ka, lua_Integer sa, int kb, lua_Integer sb) {
  if (lua_compare(L, ka, kb, LUA_OPLT)) return 1;
  if (lua_compare(L, kb, ka, LUA_OPLT)) return 0;
  return sa < sb;
}


/* The heap key of the item at 'idx': t[1] for a plain table (a
** {priority, value} pair), else the item itself. */
static void pushkey (lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TTABLE && !lua_getmetatable(L, idx))
    lua_rawgeti(L, idx, 1);
  else {
    if (lua_type(L, idx) == LUA_TTABLE) lua_pop(L, 1);  /* the metatable */
    lua_pushvalue(L, idx);
  }
}


/* Moves slot 'from' of the heap to slot 'to' (stack: items, keys). */
static void heap_move (lua_State *L, queue *q, lua_Integer from, lua_Integer to) {
  lua_rawgeti(L, -2, from);
  lua_rawseti(L, -3, to);
  lua_rawgeti(L, -1, from);
  lua_rawseti(L, -2, to);
  q->seq[to] = q->seq[from];
}


/*
** Heap insertion of the item at 'item' into slot count + 1 (the caller
** made room). The place is found by comparing only; if the queue changed
** during a comparison, returns 0 and the caller starts over.
*/
static int heap_push (lua_State *L, queue *q, int item) {
  unsigned long v = q->version;
  lua_Integer s = q->nextseq, pos = q->count + 1, i;
  int key;
  pushkey(L, item);
  key = lua_gettop(L);
  lua_getiuservalue(L, 1, KEYS);
  while (pos > 1) {
    lua_Integer parent = pos / 2, ps = q->seq[parent];
    int up;
    lua_rawgeti(L, -1, parent);
    up = before(L, key, s, -1, ps);
    lua_pop(L, 1);
    if (q->version != v) {
      lua_pop(L, 2);
      return 0;
    }
    if (!up) break;
    pos = parent;
  }
  lua_getiuservalue(L, 1, ITEMS);
  lua_insert(L, -2);            /* stack: key, items, keys */
  for (i = q->count + 1; i > pos; i /= 2) heap_move(L, q, i / 2, i);
  lua_pushvalue(L, key);
  lua_rawseti(L, -2, pos);
  lua_pushvalue(L, item);
  lua_rawseti(L, -3, pos);
  q->seq[pos] = s;
  q->nextseq++;
  lua_pop(L, 3);
  return 1;
}


/*
** Heap removal of slot 1, pushed on the stack. The last entry goes down
** from the root: the path is found by comparing only (recorded in
** 'path'), then the entries move. Returns 0 (pushing nothing) if the queue
** changed during a comparison.
*/
static int heap_pop (lua_State *L, queue *q) {
  unsigned long v = q->version;
  lua_Integer n = q->count - 1, last = q->count, pos = 1, path[64];
  lua_Integer lastseq = q->seq[last];
  int depth = 0, i, keys, lastkey;
  lua_getiuservalue(L, 1, ITEMS);
  lua_getiuservalue(L, 1, KEYS);
  keys = lua_gettop(L);
  lua_rawgeti(L, keys, last);
  lastkey = keys + 1;
  for (;;) {
    lua_Integer c = 2 * pos, cs;
    int down;
    if (c > n) break;
    if (c + 1 <= n) {
      lua_Integer s1 = q->seq[c + 1], s0 = q->seq[c];
      int right;
      lua_rawgeti(L, keys, c + 1);
      lua_rawgeti(L, keys, c);
      right = before(L, -2, s1, -1, s0);
      lua_pop(L, 2);
      if (q->version != v) goto changed;
      if (right) c++;
    }
    cs = q->seq[c];
    lua_rawgeti(L, keys, c);
    down = before(L, -1, cs, lastkey, lastseq);
    lua_pop(L, 1);
    if (q->version != v) goto changed;
    if (!down) break;
    path[depth++] = c;
    pos = c;
  }
  lua_rawgeti(L, keys - 1, 1);  /* the result */
  lua_insert(L, keys - 1);      /* stack: result, items, keys, lastkey */
  lua_pop(L, 1);
  pos = 1;
  for (i = 0; i < depth; i++) {
    heap_move(L, q, path[i], pos);
    pos = path[i];
  }
  if (pos != last) {
    heap_move(L, q, last, pos);
    lua_pushnil(L);
    lua_rawseti(L, -3, last);
    lua_pushnil(L);
    lua_rawseti(L, -2, last);
  }
  else {                         /* the only entry */
    lua_pushnil(L);
    lua_rawseti(L, -3, 1);
    lua_pushnil(L);
    lua_rawseti(L, -2, 1);
  }
  lua_pop(L, 2);
  return 1;
changed:
  lua_settop(L, keys - 2);
  return 0;
}


/* Stores the item at 'item' (there is room: count < cap). 0: start over. */
static int insert (lua_State *L, queue *q, int item) {
  lua_Integer slot;
  if (q->kind == PRIO) {
    if (!heap_push(L, q, item)) return 0;
  }
  else {
    slot = q->kind == LIFO ? q->count + 1 : (q->head + q->count) % q->cap + 1;
    lua_getiuservalue(L, 1, ITEMS);
    lua_pushvalue(L, item);
    lua_rawseti(L, -2, slot);
    lua_pop(L, 1);
  }
  q->count++;
  publish(q);
  if (q->kind != SIMPLE) q->unfinished++;
  gilua_waitq_wake(&q->not_empty, 0);
  return 1;
}


/* Pushes the next item and takes it out (count > 0). 0: start over. */
static int take (lua_State *L, queue *q) {
  lua_Integer slot;
  if (q->kind == PRIO) {
    if (!heap_pop(L, q)) return 0;
  }
  else {
    if (q->kind == LIFO) slot = q->count;
    else {
      slot = q->head + 1;
      q->head = slot == q->cap ? 0 : slot;
    }
    lua_getiuservalue(L, 1, ITEMS);
    lua_rawgeti(L, -1, slot);
    lua_pushnil(L);             /* let the item be collected */
    lua_rawseti(L, -3, slot);
    lua_remove(L, -2);
  }
  q->count--;
  publish(q);
  gilua_waitq_wake(&q->not_full, 0);
  return 1;
}


static int doput (lua_State *L, queue *q, int block, double timeout) {
  double until = GILUA_FOREVER;
  int intime = 1, spun = 0;
  for (;;) {
    if (q->shutdown) return gilua_raise(L, "queue.ShutDown", NULL);
    if (q->maxsize > 0 && q->count >= q->maxsize) {
      if (!block || !intime) return gilua_raise(L, "queue.Full", NULL);
      if (!spun) {
        spun = 1;
        spin(L, q, timeout, &until);
      }
      else intime = await(L, &q->not_full, timeout, until);
    }
    else if (q->count == q->cap) grow(L, q);
    else if (insert(L, q, 2)) return 0;
  }
}


static int doget (lua_State *L, queue *q, int block, double timeout) {
  double until = GILUA_FOREVER;
  int intime = 1, spun = 0;
  for (;;) {
    if (q->count > 0) {
      if (take(L, q)) return 1;
    }
    else if (q->shutdown) return gilua_raise(L, "queue.ShutDown", NULL);
    else if (!block || !intime) return gilua_raise(L, "queue.Empty", NULL);
    else if (!spun) {
      spun = 1;
      spin(L, q, timeout, &until);
    }
    else intime = await(L, &q->not_empty, timeout, until);
  }
}


/* put(item, block=true, timeout=nil) or put(item, {block =, timeout =}) */
static int q_put (lua_State *L) {
  queue *q = toqueue(L);
  int block;
  double timeout;
  if (lua_gettop(L) < 2)
    return gilua_raise(L, "TypeError", "put() missing required argument 'item' (nil is an item: put(nil))");
  gilua_arg_block(L, 3, &block, &timeout);
  if (q->kind == SIMPLE) lua_settop(L, 2);  /* never full */
  return doput(L, q, block, timeout);
}


static int q_put_nowait (lua_State *L) {
  queue *q = toqueue(L);
  if (lua_gettop(L) < 2)
    return gilua_raise(L, "TypeError", "put_nowait() missing required argument 'item'");
  lua_settop(L, 2);
  return doput(L, q, 0, 0);
}


/* get(block=true, timeout=nil) or get{block =, timeout =} */
static int q_get (lua_State *L) {
  queue *q = toqueue(L);
  int block;
  double timeout;
  gilua_arg_block(L, 2, &block, &timeout);
  lua_settop(L, 1);
  return doget(L, q, block, timeout);
}


static int q_get_nowait (lua_State *L) {
  queue *q = toqueue(L);
  lua_settop(L, 1);
  return doget(L, q, 0, 0);
}


static int q_qsize (lua_State *L) {
  lua_pushinteger(L, toqueue(L)->count);
  return 1;
}


static int q_empty (lua_State *L) {
  lua_pushboolean(L, toqueue(L)->count == 0);
  return 1;
}


static int q_full (lua_State *L) {
  queue *q = toqueue(L);
  lua_pushboolean(L, q->maxsize > 0 && q->count >= q->maxsize);
  return 1;
}


static int q_task_done (lua_State *L) {
  queue *q = toqueue(L);
  if (q->unfinished <= 0)
    return gilua_raise(L, "ValueError", "task_done() called too many times");
  if (--q->unfinished == 0) gilua_waitq_wake(&q->all_done, 1);
  return 0;
}


static int q_join (lua_State *L) {
  queue *q = toqueue(L);
  while (q->unfinished > 0) gilua_waitq_wait(L, &q->all_done, GILUA_FOREVER);
  return 0;
}


/* Empties the slot tables (no comparison, no allocation). */
static void clear (lua_State *L, queue *q) {
  lua_Integer i;
  int t, nt = q->kind == PRIO ? 2 : 1;
  for (t = 1; t <= nt; t++) {
    lua_getiuservalue(L, 1, t);
    for (i = 1; i <= q->cap; i++) {
      lua_pushnil(L);
      lua_rawseti(L, -2, i);
    }
    lua_pop(L, 1);
  }
  q->head = q->count = 0;
  publish(q);
}


/* shutdown(immediate=false): puts fail from now on, gets fail once the
** queue is empty; with immediate, the items are dropped at once (each
** counted as a task done). Every blocked caller is woken to see it. */
static int q_shutdown (lua_State *L) {
  queue *q = toqueue(L);
  gilua_args a;
  int immediate;
  gilua_args_init(&a, L, 2);
  immediate = gilua_arg_bool(&a, 0, "immediate", 0);
  q->shutdown = 1;
  publish(q);
  if (immediate) {
    q->unfinished = q->unfinished > q->count ? q->unfinished - q->count : 0;
    clear(L, q);
    gilua_waitq_wake(&q->all_done, 1);
  }
  gilua_waitq_wake(&q->not_empty, 1);
  gilua_waitq_wake(&q->not_full, 1);
  return 0;
}


static int q_is_shutdown (lua_State *L) {
  lua_pushboolean(L, toqueue(L)->shutdown);
  return 1;
}


/* For concurrent.futures: threads waiting in get() (asleep or spinning)
** minus the items waiting for them. Not negative: the last item put is
** taken by a thread already waiting. (Spinning putters of a full queue are
** counted too, but the executor's queue is never full.) */
static int q_idle (lua_State *L) {
  queue *q = toqueue(L);
  lua_pushinteger(L, q->not_empty.waiters + q->spinners - q->count);
  return 1;
}


/* _poll() -> true, item | false: get_nowait without an exception. */
static int q_poll (lua_State *L) {
  queue *q = toqueue(L);
  lua_settop(L, 1);
  while (q->count > 0) {
    if (take(L, q)) {
      lua_pushboolean(L, 1);
      lua_insert(L, -2);
      return 2;
    }
  }
  lua_pushboolean(L, 0);
  return 1;
}


static int q_tostring (lua_State *L) {
  queue *q = toqueue(L);
  lua_pushfstring(L, "<_queue.queue %s size=%I at %p>", kinds[q->kind],
                  (LUAI_UACINT)q->count, (void *)q);
  return 1;
}


static int q_gc (lua_State *L) {
  queue *q = toqueue(L);
  free(q->seq);
  q->seq = NULL;
  gilua_waitq_destroy(&q->not_empty);
  gilua_waitq_destroy(&q->not_full);
  gilua_waitq_destroy(&q->all_done);
  return 0;
}


/* new(kind, maxsize): kind is "fifo", "lifo", "priority" or "simple". */
static int q_new (lua_State *L) {
  int kind = luaL_checkoption(L, 1, "fifo", kinds);
  lua_Integer maxsize = luaL_optinteger(L, 2, 0);
  queue *q;
  q = lua_newuserdatauv(L, sizeof *q, kind == PRIO ? 2 : 1);
  q->kind = kind;
  q->shutdown = 0;
  q->maxsize = kind == SIMPLE ? 0 : maxsize;
  q->head = q->count = q->unfinished = q->nextseq = 0;
  q->cap = MINCAP;
  q->seq = NULL;
  q->version = 0;
  q->spinners = 0;
  atomic_init(&q->stamp, 0);
  gilua_waitq_init(&q->not_empty, "a Queue (get)", NULL);
  gilua_waitq_init(&q->not_full, "a Queue (put)", NULL);
  gilua_waitq_init(&q->all_done, "a Queue (join)", NULL);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_setmetatable(L, -2);      /* __gc from now on */
  if (kind == PRIO) {
    q->seq = malloc((MINCAP + 1) * sizeof *q->seq);
    if (q->seq == NULL) return luaL_error(L, "not enough memory");
  }
  lua_createtable(L, MINCAP, 0);
  lua_setiuservalue(L, -2, ITEMS);
  if (kind == PRIO) {
    lua_createtable(L, MINCAP, 0);
    lua_setiuservalue(L, -2, KEYS);
  }
  return 1;
}


static const luaL_Reg methods[] = {
  {"put", q_put}, {"get", q_get}, {"put_nowait", q_put_nowait},
  {"get_nowait", q_get_nowait}, {"qsize", q_qsize}, {"empty", q_empty},
  {"full", q_full}, {"task_done", q_task_done}, {"join", q_join},
  {"shutdown", q_shutdown}, {"_is_shutdown", q_is_shutdown},
  {"_idle", q_idle}, {"_poll", q_poll}, {NULL, NULL}
};


/* The module table holds new() and every method, which queue.lua copies
** into its classes; the userdata's metatable has them too. */
int luaopen_gilua_queue (lua_State *L) {
  static const luaL_Reg meta[] = {
    {"__tostring", q_tostring}, {"__gc", q_gc}, {NULL, NULL}
  };
  gilua_newclass(L, QUEUE_MT, methods, meta);
  lua_newtable(L);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, methods, 1);
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, q_new, 1);
  lua_setfield(L, -2, "new");
  return 1;
}
