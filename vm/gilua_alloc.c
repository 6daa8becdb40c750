/*
** gilua_alloc.c: the memory allocator of the interpreter's Lua state.
**
** Lua allocates many small blocks of a few sizes (tables, closures,
** coroutines and their stacks) and frees them in bursts when the collector
** sweeps. A task of asyncio, say, is a dozen such blocks. glibc's malloc
** serves a handful of frees from its per-thread cache and then takes its
** general path, which costs several times more.
**
** So blocks up to POOL_MAX bytes come from pools, one per size class of
** 16 bytes: a free block goes on the front of its class's list and the next
** allocation of that class takes it back. Lua gives the size of a block
** when it frees or resizes it, so blocks carry no header and a free is a
** push. Empty lists are refilled from chunks of CHUNK_SIZE bytes, carved in
** order. Larger blocks go to malloc.
**
** No lock: every allocation of the state happens with the GIL held.
** Chunks are returned to the system only when the state closes; memory
** freed in one size class serves that class again (as CPython's small
** object allocator keeps its arenas).
**
** GILUA_MALLOC=system in the environment (for valgrind), or a build with
** GILUA_SYSTEM_ALLOC, uses realloc and free for every block, so that
** memory checkers see each one. Under AddressSanitizer the pools tell it
** which blocks are free, so a use after free is still caught.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gilua_vm.h"

#if defined(__SANITIZE_ADDRESS__)
#define POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_ASAN 1
#endif
#endif

#ifdef POOL_ASAN
#include <sanitizer/asan_interface.h>
/* a free block keeps its first word (the list link) readable */
#define mark_free(b, n) \
  ASAN_POISON_MEMORY_REGION((char *)(b) + sizeof(void *), (n) - sizeof(void *))
#define mark_used(b, n)   ASAN_UNPOISON_MEMORY_REGION((b), (n))
#define mark_unborn(b, n) ASAN_POISON_MEMORY_REGION((b), (n))
#else
#define mark_unborn(b, n) ((void)0)
#define mark_free(b, n)   ((void)0)
#define mark_used(b, n)   ((void)0)
#endif


#define POOL_ALIGN   16
#define POOL_MAX     1024                /* larger blocks: malloc */
#define NCLASSES     (POOL_MAX / POOL_ALIGN)
#define CHUNK_SIZE   (256 * 1024)

typedef struct Chunk {
  struct Chunk *next;
} Chunk;

struct gilua_pool {
  void *free[NCLASSES + 1];              /* per class: a list of free blocks */
  char *next, *end;                      /* the rest of the newest chunk */
  Chunk *chunks;                         /* every chunk, to free at close */
};

/* the chunk's header is padded to keep the blocks aligned */
#define CHUNK_HEAD   ((sizeof(Chunk) + POOL_ALIGN - 1) & ~(size_t)(POOL_ALIGN - 1))


static size_t sizeclass (size_t size) {
  return (size + POOL_ALIGN - 1) / POOL_ALIGN;
}


static void pool_free (gilua_pool *p, void *b, size_t size) {
  size_t c = sizeclass(size);
  *(void **)b = p->free[c];
  p->free[c] = b;
  mark_free(b, c * POOL_ALIGN);
}


/* A block of class 'c' from a new chunk (the old chunk's tail, too small
** for it, is given to the smaller classes). */
static void *refill (gilua_pool *p, size_t c) {
  size_t need = c * POOL_ALIGN;
  Chunk *ch;
  void *b;
  while ((size_t)(p->end - p->next) >= POOL_ALIGN) {  /* keep the tail */
    size_t tc = (size_t)(p->end - p->next) / POOL_ALIGN;
    if (tc > NCLASSES) tc = NCLASSES;
    mark_used(p->next, tc * POOL_ALIGN);
    pool_free(p, p->next, tc * POOL_ALIGN);
    p->next += tc * POOL_ALIGN;
  }
  ch = (Chunk *)malloc(CHUNK_SIZE);
  if (ch == NULL) return NULL;
  ch->next = p->chunks;
  p->chunks = ch;
  p->next = (char *)ch + CHUNK_HEAD;
  p->end = (char *)ch + CHUNK_SIZE;
  mark_unborn(p->next, CHUNK_SIZE - CHUNK_HEAD);
  b = p->next;
  p->next += need;
  return b;
}


static void *pool_alloc (gilua_pool *p, size_t size) {
  size_t c = sizeclass(size);
  void *b = p->free[c];
  if (b != NULL)
    p->free[c] = *(void **)b;
  else if ((size_t)(p->end - p->next) >= c * POOL_ALIGN) {
    b = p->next;
    p->next += c * POOL_ALIGN;
  }
  else
    b = refill(p, c);
  if (b != NULL) mark_used(b, c * POOL_ALIGN);
  return b;
}


/* The lua_Alloc function. 'osize' is the block's size when ptr is a block
** (for a new block it tells the kind of object instead). */
static void *pool_lalloc (void *ud, void *ptr, size_t osize, size_t nsize) {
  gilua_pool *p = (gilua_pool *)ud;
  void *nb;
  if (ptr == NULL) {
    if (nsize == 0) return NULL;
    return nsize <= POOL_MAX ? pool_alloc(p, nsize) : malloc(nsize);
  }
  if (nsize == 0) {
    if (osize <= POOL_MAX) pool_free(p, ptr, osize);
    else free(ptr);
    return NULL;
  }
  if (osize > POOL_MAX && nsize > POOL_MAX)
    return realloc(ptr, nsize);
  if (osize <= POOL_MAX && nsize <= POOL_MAX
      && sizeclass(osize) == sizeclass(nsize))
    return ptr;                             /* the block fits already */
  nb = nsize <= POOL_MAX ? pool_alloc(p, nsize) : malloc(nsize);
  if (nb == NULL) return NULL;              /* Lua keeps the old block */
  memcpy(nb, ptr, osize < nsize ? osize : nsize);
  if (osize <= POOL_MAX) pool_free(p, ptr, osize);
  else free(ptr);
  return nb;
}


static void *system_lalloc (void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud; (void)osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, nsize);
}


static int use_system (void) {
#ifdef GILUA_SYSTEM_ALLOC
  return 1;
#else
  const char *v = getenv("GILUA_MALLOC");
  return v != NULL && strcmp(v, "system") == 0;
#endif
}


/* The allocator for a new state: pools, or the system's. */
lua_Alloc gilua_allocator (gilua_pool **pool) {
  *pool = NULL;
  if (!use_system()) {
    *pool = (gilua_pool *)calloc(1, sizeof(gilua_pool));
    if (*pool != NULL) return pool_lalloc;
  }
  return system_lalloc;
}


/* After lua_close: the chunks go back to the system (when the state used
** them: an embedder's own state may have any allocator). */
void gilua_pool_free (lua_Alloc f, void *ud) {
  gilua_pool *p = (gilua_pool *)ud;
  Chunk *ch;
  if (f != pool_lalloc || p == NULL) return;
  ch = p->chunks;
  while (ch != NULL) {
    Chunk *next = ch->next;
    mark_used(ch, CHUNK_SIZE);
    free(ch);
    ch = next;
  }
  free(p);
}
