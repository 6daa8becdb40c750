/*
** gilua.h: the public C API of libgilua, Lua 5.4 with a Global Interpreter
** Lock.
**
** One interpreter per process. Every OS thread that touches Lua does so with
** its own thread state (a lua_State made by lua_newthread from the main
** state) and only while it holds the GIL. A thread that is about to block
** (sleep, wait, read, ...) releases the GIL around the blocking call so that
** other threads can run Lua meanwhile:
**
**     GILUA_BEGIN_ALLOW_THREADS(T)
**       n = read(fd, buf, sizeof buf);      -- no Lua API call in here
**     GILUA_END_ALLOW_THREADS(T)
**
** "GIL: held" below means the caller must hold the GIL when it calls.
*/
#ifndef gilua_h
#define gilua_h

#include <lua.h>

#define GILUA_VERSION "gilua 0.1"

#ifdef __cplusplus
extern "C" {
#endif

/* A new interpreter with Lua's libraries and every gilua module loaded.
** The calling thread becomes the main thread and holds the GIL on return.
** Returns NULL if out of memory or if an interpreter is already open.
** GIL: none yet. */
lua_State *gilua_open(void);

/* Waits for the non-daemon threads (Python's exit rule), stops the daemon
** ones from ever running Lua again, and closes the interpreter.
** GIL: held, by the thread that called gilua_open. */
void gilua_close(lua_State *L);

/* Opens Lua's standard libraries plus gilua's modules into L, a state that
** the host made itself with luaL_newstate. The calling thread becomes the
** main thread and holds the GIL. Returns 0 on success. GIL: none yet. */
int gilua_openlibs(lua_State *L);

/* Called by a host thread that wants to run Lua: gives it its own thread
** state and takes the GIL for it. Returns the new thread state.
** GIL: not held by the calling thread. */
lua_State *gilua_attach(lua_State *L);

/* Forgets a state made by gilua_attach and releases the GIL.
** GIL: held, through T. */
void gilua_detach(lua_State *T);

/* Release and take back the GIL around blocking code. T is any lua_State of
** the calling thread (its thread state or a coroutine it runs); between the
** two calls, no Lua API function may be called. */
void gilua_release(lua_State *T);
void gilua_acquire(lua_State *T);

#define GILUA_BEGIN_ALLOW_THREADS(T) { lua_State *gilua_T_ = (T); gilua_release(gilua_T_);
#define GILUA_END_ALLOW_THREADS(T) gilua_acquire(gilua_T_); (void)(T); }

/* The switch interval, in seconds (default 0.005). GIL: any. */
void gilua_setswitchinterval(double seconds);
double gilua_getswitchinterval(void);

/* Loads and runs a script file (NULL: standard input) with __name__ set to
** "__main__" and arg set from argv; an error is printed with its traceback
** to stderr. Returns 0 on success. GIL: held. */
int gilua_dofile(lua_State *L, const char *path);

/* Runs the function on top of the stack (with nargs arguments under it)
** in protected mode, adding a traceback to an error: like lua_pcall, with
** the message handler of the gilua command. GIL: held. */
int gilua_pcall(lua_State *L, int nargs, int nresults);

/* Prints the error on top of the stack (a string or an exception object)
** with its traceback to stderr, and pops it. GIL: held. */
void gilua_report(lua_State *L);

/* GIL statistics, totals since start or since the last reset. */
typedef struct gilua_stats {
  unsigned long switches;        /* the GIL changed hands */
  unsigned long forced_switches; /* ... because of a drop request */
  unsigned long drop_requests;   /* drop requests posted */
} gilua_stats;
void gilua_getstats(gilua_stats *st);

#ifdef __cplusplus
}
#endif

#endif
