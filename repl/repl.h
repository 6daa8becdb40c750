/*
** repl.h: what the two halves of the gilua command share.
** main.c reads the command line and runs scripts; repl.c runs code with
** Ctrl-C turned into KeyboardInterrupt, and holds the interactive loop.
*/
#ifndef repl_h
#define repl_h

#include <lua.h>

#define PROGNAME "gilua"

/* The line that -v and the interactive banner print. */
#define REPL_VERSION_LINE \
  GILUA_VERSION " (" LUA_RELEASE ") with a Global Interpreter Lock"

/* Runs the function on top of the stack, with 'nargs' arguments under it,
** like gilua_pcall (errors get a traceback), while Ctrl-C raises
** KeyboardInterrupt in the running code. GIL: held. */
int repl_docall(lua_State *L, int nargs, int nresults);

/* The interactive loop: reads, runs and prints until end of input.
** 'banner' prints the version line first. GIL: held (released while
** waiting for input). */
void repl_loop(lua_State *L, int banner);

#endif
