/*
** repl.h: what the two halves of the gilua command share.
** main.c reads the command line and runs scripts; repl.c runs code with
** Ctrl-C turned into KeyboardInterrupt, and holds the interactive loop.
*/
#ifndef repl_h
#define repl_h

#include <lua.h>

#define PROGNAME "gilua"

/* The line that -v and the interactive banner print (lua prints its
** copyright line there). */
#define REPL_VERSION_LINE \
  GILUA_VERSION " (" LUA_RELEASE ") with a Global Interpreter Lock"

/* Runs the function on top of the stack, with 'nargs' arguments under it,
** like gilua_pcall (errors get a traceback), while Ctrl-C raises
** KeyboardInterrupt in the running code. GIL: held. */
int repl_docall(lua_State *L, int nargs, int nresults);

/* Prints the error on top of the stack (and pops it) as lua does:
** "progname: message" and the traceback (no "progname: " when NULL, as
** in the interactive loop). GIL: held. */
void repl_report(lua_State *L, const char *progname);

/* The interactive loop: reads, runs and prints until end of input.
** GIL: held (released while waiting for input). */
void repl_loop(lua_State *L);

#endif
