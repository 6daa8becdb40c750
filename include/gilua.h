/*
** gilua.h: the public C API of libgilua, Lua 5.4 with a Global Interpreter
** Lock.
**
** A process may hold several interpreters, each with its own GIL (see
** docs/embedding.md); a thread runs in one at a time. Every OS thread that
** touches Lua does so with its own thread state (a lua_State made by
** lua_newthread from the interpreter's main state) and only while it holds
** that interpreter's GIL. Calls about "the GIL" act on the GIL of the
** interpreter the calling thread runs in (the main one if it runs in none). A thread that is about to block
** (sleep, wait, read, ...) releases the GIL around the blocking call so that
** other threads can run Lua meanwhile:
**
**     GILUA_BEGIN_ALLOW_THREADS(T)
**       n = read(fd, buf, sizeof buf);      -- no Lua API call in here
**     GILUA_END_ALLOW_THREADS(T)
**
** A host thread of its own (a pthread the host started) runs Lua so:
**
**     lua_State *T = gilua_attach(L);       -- now holds the GIL
**     lua_getglobal(T, "work");
**     if (gilua_pcall(T, 0, 0) != LUA_OK) gilua_report(T);
**     gilua_detach(T);                      -- GIL released, T is gone
**
** Build a host with  cc host.c $(pkg-config --cflags --libs gilua)
**
** Every function says who must hold the GIL when it is called:
**   "GIL: held"      the calling thread holds it (through the state given);
**   "GIL: not held"  the calling thread must not hold it (it would wait for
**                    itself);
**   "GIL: any"       either; such functions take only the GIL's own short
**                    internal lock.
** A function marked "GIL: held" that is called by a thread that does not
** hold the GIL (it has no state, or released it), or given a NULL state,
** is a fatal error where it checks (gilua_close, gilua_pcall,
** gilua_dofile, gilua_report): it prints "gilua: fatal error in
** <function>: ..." to stderr and calls abort(), as CPython's
** Py_FatalError does, rather than touch Lua unprotected. Elsewhere (the
** Lua API itself) it is undefined behaviour.
**
** While a thread holds the GIL it may receive SIGURG: that is how another
** thread asks it to let go (the handler only sets a Lua hook). A blocking
** system call made while holding the GIL may therefore fail with EINTR; make
** blocking calls with the GIL released, which is the rule anyway.
*/
#ifndef gilua_h
#define gilua_h

#include <stdio.h>

#include <lua.h>

#define GILUA_VERSION "gilua 0.1"

/* What libgilua exports: the functions of this header, nothing else. */
#if defined(__GNUC__)
#define GILUA_API __attribute__((visibility("default")))
#else
#define GILUA_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/*
** {==================================================================
** The interpreter
** ===================================================================
*/

/* A new interpreter with Lua's libraries and every gilua module loaded,
** and a GIL of its own. The calling thread becomes its main thread and
** holds its GIL on return; a thread that ran in another interpreter leaves
** it (its GIL released) until it closes this one. The first interpreter
** opened is the main one. Returns NULL if out of memory.
** GIL: not held, or held in another interpreter. */
GILUA_API lua_State *gilua_open(void);

/* Waits for the non-daemon threads (Python's exit rule), then closes the
** interpreter. Threads that still want the GIL afterwards (daemon threads,
** and host threads still attached) are parked for good the next time they
** try to take it: they never run Lua again and gilua_acquire does not
** return for them. So detach (and join) your own threads before closing.
** The main interpreter first closes the interpreters made from Lua that
** are still open. The calling thread then runs where it ran before
** gilua_open (holding that GIL again), if anywhere. A new interpreter may
** be opened after this one is closed.
** L NULL, or not the main state of an open interpreter (one of its
** threads, one closed already: a second gilua_close): a no-op. Called by
** another thread than the one that opened it, or by that thread without
** the GIL: a fatal error.
** GIL: held, by the thread that called gilua_open, running in L. */
GILUA_API void gilua_close(lua_State *L);

/* Opens Lua's standard libraries plus gilua's modules into L, a state that
** the host made itself with luaL_newstate: a new interpreter, as with
** gilua_open. Returns 0 on success; on failure (L NULL, out of memory) the
** state is not usable with gilua (close it with lua_close).
** GIL: not held, or held in another interpreter. */
GILUA_API int gilua_openlibs(lua_State *L);

/* }================================================================== */


/*
** {==================================================================
** Threads
** ===================================================================
*/

/* Called by a host thread that wants to run Lua in the interpreter whose
** main state is L: gives it its own thread state there (a lua_State whose
** globals are the interpreter's) and takes that interpreter's GIL for it,
** waiting as long as needed. A thread that runs in another interpreter
** leaves it (its GIL released) until gilua_detach. Returns the new state,
** or NULL if L is NULL or no open interpreter's, the thread runs in that
** interpreter already (it attached before, or it opened it), or memory ran
** out. A thread attaches once to an interpreter (again after
** gilua_detach); Lua sees it as a daemon thread
** (threading.current_thread() is a dummy thread).
** GIL: not held, or held in another interpreter. */
GILUA_API lua_State *gilua_attach(lua_State *L);

/* Forgets a state made by gilua_attach and releases the GIL; a thread that
** ran in another interpreter before attaching runs there again, holding
** its GIL. Call it from the thread that attached, before that thread ends.
** The figures of the thread stay in the statistics. It acts on the calling
** thread's state (T may be NULL); from a thread without one (never
** attached, detached already) and from an interpreter's main thread
** (gilua_close ends its state), it is a no-op.
** GIL: held through T (or released with gilua_release: it is not released
** twice). */
GILUA_API void gilua_detach(lua_State *T);

/* Release and take back the GIL around blocking code. T is any lua_State of
** the calling thread (its thread state or a coroutine it runs); between the
** two calls no Lua API function may be called on any state.
** Calls nest: a gilua_release made while the GIL is released already only
** counts, and only the matching outermost gilua_acquire takes the GIL back.
** So a library function may wrap its blocking call in the macros without
** knowing whether its caller has released the GIL already.
** They act on the calling thread's state, whatever T is (NULL included).
** No-ops: both, from a thread without a state (never attached, detached,
** before gilua_open, after gilua_close); gilua_acquire without a pending
** gilua_release. A thread may detach while released.
** gilua_release: GIL held (or released by an enclosing gilua_release).
** gilua_acquire: GIL released by a matching gilua_release. errno is kept
** as the blocking code left it. */
GILUA_API void gilua_release(lua_State *T);
GILUA_API void gilua_acquire(lua_State *T);

#define GILUA_BEGIN_ALLOW_THREADS(T) { lua_State *gilua_T_ = (T); gilua_release(gilua_T_);
#define GILUA_END_ALLOW_THREADS(T) gilua_acquire(gilua_T_); (void)(T); }

/* 1 if the calling thread holds the GIL now, else 0. GIL: any. */
GILUA_API int gilua_hasgil(void);

/* Names the calling thread in statistics and traces (threading.Thread
** names its threads itself; an attached host thread is "Thread-<tid>"
** until named). From a thread without a state, or with NULL: a no-op.
** GIL: any. */
GILUA_API void gilua_setthreadname(const char *name);

/* The switch interval, in seconds (default 0.005): how long a thread waits
** for the GIL before it asks the holder to let go. GIL: any. */
GILUA_API void gilua_setswitchinterval(double seconds);
GILUA_API double gilua_getswitchinterval(void);

/* The GIL's policy: who gets the GIL, and when a holder must let go.
**   "new"          (the default) CPython 3.2+: a waiter asks the holder to
**                  let go after the switch interval; forced switching.
**   "old"          CPython before 3.2: the holder lets go every check
**                  interval (VM instructions) and at once tries to take the
**                  GIL back; no request, no forced switching.
**   "io-priority"  new, but a thread back from a blocking call asks at once
**                  and goes first (bpo-7946).
**   "fifo"         new, but waiters get the GIL in the order they came.
** It may change at any time, threads running: waiting threads go on
** waiting under the new policy. gilua_setgilpolicy returns 0, or -1 with
** errno EINVAL if no policy has that name, or EBUSY while the
** deterministic scheduler is on. gilua_gilpolicyname(i) is the
** name of the i-th policy (0 is the default), NULL past the last.
** GIL: any. */
GILUA_API int gilua_setgilpolicy(const char *name);
GILUA_API const char *gilua_getgilpolicy(void);
GILUA_API const char *gilua_gilpolicyname(int i);

/* The deterministic scheduler. Under mode "random" the GIL changes hands
** only where a generator seeded with 'seed' decides: between any two VM
** instructions and at every blocking call, to a thread it draws among
** the runnable ones; time is virtual (it moves only when every thread
** waits, straight to the next deadline). The same program with the same
** seed and input runs the same way every time. When every thread waits
** and nothing can wake one, the process prints who waits on what and
** exits with GILUA_EXIT_DEADLOCK. Mode "off" gives the GIL its policy
** back. It may be set before gilua_open; each opening of the interpreter
** starts from the seed again. Returns 0, or -1 with errno EINVAL (no such
** mode) or EBUSY (a second thread exists: set it before threads start).
** GIL: held, or before gilua_open. */
#define GILUA_EXIT_DEADLOCK 3
GILUA_API int gilua_setscheduler(const char *mode, unsigned long long seed);
/* "off" or "random"; *seed gets the seed (if not NULL). GIL: any. */
GILUA_API const char *gilua_getscheduler(unsigned long long *seed);

/* The check interval of the policy "old": VM instructions between two
** checks (default 100, as Python 2's sys.setcheckinterval); values below 1
** count as 1. Counting instructions slows the VM down, so it happens only
** under "old" and while more than one thread exists. GIL: any. */
GILUA_API void gilua_setcheckinterval(int n);
GILUA_API int gilua_getcheckinterval(void);

/* }================================================================== */


/*
** {==================================================================
** Ctrl-C
** ===================================================================
*/

/* With 'on', SIGINT (Ctrl-C) makes the main thread raise KeyboardInterrupt
** at its next Lua instruction and cuts short the wait or sleep it is
** blocked in, as Python does; a SIGINT that lands in another thread is
** passed on to the main thread. With 0, SIGINT gets its default action
** back. The gilua command turns it on while a script runs; a host decides
** for itself. GIL: any. */
GILUA_API void gilua_sigint(int on);
GILUA_API int gilua_sigint_on(void);

/* As if Ctrl-C were pressed (CPython's PyErr_SetInterrupt); ignored, as
** SIGINT would be, while gilua_sigint is off. GIL: any, from any thread. */
GILUA_API void gilua_setinterrupt(void);

/* 1 if a Ctrl-C is pending for the calling thread, else 0: what blocking
** code running without the GIL tests when a call fails with EINTR, to stop
** waiting. GIL: any. */
GILUA_API int gilua_interrupt_pending(void);

/* Raises KeyboardInterrupt (and does not return) if a Ctrl-C is pending for
** the calling thread; else returns (CPython's PyErr_CheckSignals). Call it
** after a blocking call was cut short. GIL: held. */
GILUA_API void gilua_checkinterrupt(lua_State *L);

/* }================================================================== */


/*
** {==================================================================
** Running code
** ===================================================================
*/

/* Loads and runs a script file (NULL: standard input) with __name__ set to
** "__main__"; an error is printed with its traceback to stderr. Returns 0
** on success. GIL: held. */
GILUA_API int gilua_dofile(lua_State *L, const char *path);

/* Runs the function on top of the stack (with nargs arguments under it)
** in protected mode, adding a traceback to an error: like lua_pcall, with
** the message handler of the gilua command. On error the error object is
** on the stack: an exception object (a table: tostring gives
** "ValueError: message", its field 'traceback' the traceback) or a string
** with the traceback appended. GIL: held. */
GILUA_API int gilua_pcall(lua_State *L, int nargs, int nresults);

/* Prints the error on top of the stack (a string or an exception object)
** with its traceback to stderr, and pops it. GIL: held. */
GILUA_API void gilua_report(lua_State *L);

/* }================================================================== */


/*
** {==================================================================
** Seeing the GIL: statistics and traces
** ===================================================================
*/

/* Totals since gilua_open or the last gilua_resetstats. */
typedef struct gilua_stats {
  unsigned long switches;        /* the GIL changed hands */
  unsigned long forced_switches; /* ... because of a drop request */
  unsigned long drop_requests;   /* drop requests posted */
  double elapsed;                /* seconds these figures cover */
  int threads;                   /* records gilua_getthreadstats has */
} gilua_stats;

/* One thread's figures. Finished threads are kept too (alive == 0): the
** first 1000 one by one, then summed up in one last record named
** "(N more finished threads)". */
typedef struct gilua_threadstats {
  char name[64];
  unsigned long ident;           /* threading.get_ident() */
  long native_id;                /* the OS thread id (threading.get_native_id()) */
  int alive;                     /* 0 once the thread has left */
  double hold_time;              /* seconds holding the GIL */
  double wait_time;              /* seconds waiting for it */
  unsigned long acquisitions;    /* times it took the GIL */
  unsigned long drop_requests_made;     /* asked the holder to let go */
  unsigned long drop_requests_received; /* had to let go when asked */
} gilua_threadstats;

/* GIL: any. The figures of the interpreter the calling thread runs in (the
** main one if it runs in none). They also work after the main interpreter
** closed, and then give its figures (until the next one opens). */
GILUA_API void gilua_getstats(gilua_stats *st);
/* Fills up to 'max' records, oldest thread first, and returns how many
** there are (call with max 0 to learn the count). */
GILUA_API int gilua_getthreadstats(gilua_threadstats *threads, int max);
GILUA_API void gilua_resetstats(void);
/* The readable summary that `gilua --gil-stats` prints: totals, then one
** line per thread; a table per interpreter when there have been several. */
GILUA_API void gilua_printstats(FILE *out);

/* Starts recording every acquire, release, drop request and blocking-call
** release of every thread of every interpreter, with CLOCK_MONOTONIC
** timestamps and thread names. gilua_trace_stop writes them to 'path':
** Chrome trace-event JSON (open it in https://ui.perfetto.dev or
** chrome://tracing; each interpreter is a "process" there), or, if 'path'
** ends in ".html", a self-contained page drawing the timeline (one lane per
** thread and interpreter: running, waiting for the GIL, blocked; drop
** requests marked).
** The file is created at once. Returns 0, or -1 with errno set (EBUSY: a
** trace is running already). Recording costs a few stores per GIL hand-over
** and no lock beyond the GIL's own; off, it costs nothing.
** GIL: any. */
GILUA_API int gilua_trace_start(const char *path);
/* Stops recording and writes the file. Returns 0, 1 if no trace was
** running, or -1 with errno set. GIL: any (the GIL is not needed to write,
** so a caller holding it may release it around this call). */
GILUA_API int gilua_trace_stop(void);
/* Writes the timeline page for a trace file that gilua_trace_start wrote.
** Returns 0, or -1 with errno set. GIL: any. */
GILUA_API int gilua_timeline(const char *trace_path, const char *html_path);

/* }================================================================== */

#ifdef __cplusplus
}
#endif

#endif
