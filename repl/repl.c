/*
** repl.c: the interactive loop of the gilua command, and running code
** with Ctrl-C turned into KeyboardInterrupt.
**
** Waiting for a line may take minutes, so it is done without the GIL:
** background threads go on running (and printing) while the prompt
** waits. Nothing between gilua_release and gilua_acquire touches Lua, so
** the prompt is copied out of Lua before and the line handed to Lua after.
**
** On a terminal, lines come from GNU readline's callback interface driven
** by our own poll() loop rather than from readline(): that way Ctrl-C at
** the prompt is ours to handle (drop the line, new prompt). With plain
** readline() the signal either kills the process (readline re-sends it
** to the previous handler) or goes unnoticed until Enter. Without a
** terminal, lines are read with stdio and no editing.
*/
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/ioctl.h>
#include <termios.h>

#include <readline/readline.h>
#include <readline/history.h>

#include <lua.h>
#include <lauxlib.h>

#include "gilua.h"
#include "repl.h"

/* read_line's answers; 'compile' and 'load_chunk' add theirs below the
** Lua status codes (which are all >= 0). */
#define READ_LINE 0
#define READ_EOF 1
#define READ_INTR 2

#define INCOMPLETE (-1)
#define CHUNK_EOF (-2)
#define CHUNK_INTR (-3)

#define HISTORY_MAX 1000

static lua_State *repl_L;  /* the state the loop runs in (for completion) */
static int in_loop;        /* is the interactive loop running? */
static int use_readline;   /* are stdin and stdout a terminal? */


/*
** {==================================================================
** Ctrl-C
** ===================================================================
*/

/* Ctrl-C while the loop waits for input. The handler may run in any
** thread, so besides the flag it writes to a pipe that the waiting
** poll() watches: that wakes the loop wherever the signal landed. A
** getline() is woken by passing the signal on to the loop's thread. */
static volatile sig_atomic_t interrupted;
static int intr_pipe[2] = {-1, -1};
static pthread_t loop_thread;

static void on_sigint (int sig) {
  int saved = errno;
  if (!pthread_equal(pthread_self(), loop_thread)) {
    pthread_kill(loop_thread, sig);
    errno = saved;
    return;
  }
  interrupted = 1;
  if (intr_pipe[1] >= 0) {
    ssize_t n = write(intr_pipe[1], "", 1);
    (void)n;  /* a full pipe already holds a wake-up */
  }
  errno = saved;
}

static void drain_intr_pipe (void) {
  char buf[64];
  if (intr_pipe[0] >= 0)
    while (read(intr_pipe[0], buf, sizeof buf) > 0)
      ;
}

/* Gives SIGINT to the reader ('on') or back to its default action. The
** signal is blocked meanwhile so that one arriving right then is not
** taken by the default action on its way from one handler to the other. */
static void reader_sigint (int on) {
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  gilua_sigint(0);
  if (on) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  /* no SA_RESTART: a blocked getline must return */
    sigaction(SIGINT, &sa, NULL);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static int check_interrupt (lua_State *L) {
  gilua_checkinterrupt(L);
  return 0;
}

int repl_docall (lua_State *L, int nargs, int nresults) {
  int status;
  gilua_sigint(1);
  status = gilua_pcall(L, nargs, nresults);
  reader_sigint(in_loop);
  /* A Ctrl-C that came as the code ended has nothing left to interrupt;
  ** drop it rather than let it hit whatever runs next. (Many results may
  ** have left no room on the stack: then it waits for the next call.) */
  if (lua_checkstack(L, 2)) {
    lua_pushcfunction(L, check_interrupt);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK)
      lua_pop(L, 1);
  }
  return status;
}

/* An error object that is a table with no __tostring, which gilua_report
** would show as "table: 0x...", is shown as lua shows it. */
void repl_report (lua_State *L, const char *progname) {
  if (lua_type(L, -1) == LUA_TTABLE) {
    if (luaL_getmetafield(L, -1, "__tostring") != LUA_TNIL)
      lua_pop(L, 1);
    else {
      lua_pop(L, 1);
      lua_pushliteral(L, "(error object is a table value)");
    }
  }
  if (progname != NULL)
    fprintf(stderr, "%s: ", progname);
  gilua_report(L);
}

/* }================================================================== */


/*
** {==================================================================
** Reading a line (without the GIL)
** ===================================================================
*/

static char *got_line;  /* what readline handed to on_line */
static int line_ready;        /* ... has it been called yet? */

static void on_line (char *line) {
  got_line = line;
  line_ready = 1;
  /* Leave readline until the next prompt: the terminal goes back to its
  ** usual mode while the code runs, for the code may read it too. */
  rl_callback_handler_remove();
}

/* Ctrl-C at the prompt: show the line as typed, mark it, and forget it.
** The mark goes first: leaving readline may send the cursor back to the
** start of the line (after turning bracketed paste off). */
static void cancel_line (void) {
  rl_point = rl_end;
  rl_redisplay();
  fputs("^C\n", rl_outstream);
  fflush(rl_outstream);
  rl_free_line_state();
  rl_callback_sigcleanup();
  rl_callback_handler_remove();
}

/*
** A Ctrl-D typed while code ran reached a terminal in its usual (canonical)
** mode, where it makes the next read() return 0 without a byte to read;
** readline's raw mode would then lose it and the loop go on. It is seen
** as input that poll() reports with nothing to read (FIONREAD 0), and
** taken here as the end of input it was meant to be.
*/
static int pending_eof (int fd) {
  struct termios tio;
  struct pollfd p;
  int avail = 0;
  char c;
  p.fd = fd;
  p.events = POLLIN;
  if (tcgetattr(fd, &tio) != 0 || !(tio.c_lflag & ICANON) ||
      poll(&p, 1, 0) != 1 || !(p.revents & POLLIN) ||
      ioctl(fd, FIONREAD, &avail) != 0 || avail != 0)
    return 0;
  return read(fd, &c, 0) == 0 && read(fd, &c, 1) == 0;
}

static int read_terminal (const char *prompt, char **line) {
  struct pollfd fds[2];
  if (pending_eof(fileno(rl_instream ? rl_instream : stdin))) {
    fputs(prompt, rl_outstream);
    fputc('\n', rl_outstream);
    fflush(rl_outstream);
    return READ_EOF;
  }
  got_line = NULL;
  line_ready = 0;
  /* readline 8.2 leaves this set after a Ctrl-D, and then adds an empty
  ** line after every line that follows. */
  rl_eof_found = 0;
  rl_callback_handler_install(prompt, on_line);
  fds[0].fd = fileno(rl_instream ? rl_instream : stdin);
  fds[0].events = POLLIN;
  fds[1].fd = intr_pipe[0];  /* poll skips it if negative */
  fds[1].events = POLLIN;
  while (!line_ready) {
    if (interrupted) {
      cancel_line();
      return READ_INTR;
    }
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      rl_callback_handler_remove();
      return READ_EOF;
    }
    if (fds[1].revents & POLLIN) {
      drain_intr_pipe();
      interrupted = 1;
    }
    else if (fds[0].revents & POLLNVAL) {  /* stdin was closed */
      rl_callback_handler_remove();
      return READ_EOF;
    }
    else if (fds[0].revents)
      rl_callback_read_char();
  }
  *line = got_line;
  if (got_line == NULL) {
    /* Ctrl-D: end the prompt's line. readline 8.2 does it itself when it
    ** turns bracketed paste off; not otherwise. */
    const char *bp = rl_variable_value("enable-bracketed-paste");
    if (bp == NULL || strcmp(bp, "on") != 0) {
      fputc('\n', rl_outstream);
      fflush(rl_outstream);
    }
    return READ_EOF;
  }
  return READ_LINE;
}

/* Without a terminal, the line read is echoed after its prompt, as lua
** (which reads through readline there too) does: "gilua -i < file" shows
** a transcript, the same as "lua5.4 -i < file". */
static int read_plain (const char *prompt, char **line, size_t *size) {
  size_t cap = 0;
  ssize_t len;
  fputs(prompt, stdout);
  fflush(stdout);
  *line = NULL;
  for (;;) {
    if ((len = getline(line, &cap, stdin)) >= 0) {
      *size = (size_t)len;  /* NUL bytes included: they are Lua's to judge */
      fwrite(*line, 1, (size_t)len, stdout);
      if (len == 0 || (*line)[len - 1] != '\n')
        fputc('\n', stdout);
      fflush(stdout);
      return READ_LINE;
    }
    free(*line);
    *line = NULL;
    if (!ferror(stdin)) {
      fputc('\n', stdout);  /* what follows starts on a line of its own */
      return READ_EOF;
    }
    clearerr(stdin);
    if (interrupted) {
      fputs("^C\n", stdout);
      return READ_INTR;
    }
    if (errno != EINTR)
      return READ_EOF;
  }
}

/* Reads a line with the GIL released and pushes it without its newline.
** Returns READ_LINE, READ_EOF or READ_INTR. */
static int read_line (lua_State *L, const char *prompt) {
  char *line = NULL;
  size_t len = 0;
  int r;
  drain_intr_pipe();
  interrupted = 0;
  fflush(stdout);  /* what print() left in the buffer goes before the prompt */
  gilua_release(L);
  r = use_readline ? read_terminal(prompt, &line)
                   : read_plain(prompt, &line, &len);
  gilua_acquire(L);
  if (r != READ_LINE)
    return r;
  if (use_readline)
    len = strlen(line);
  if (len > 0 && line[len - 1] == '\n')
    len--;
  lua_pushlstring(L, line, len);
  free(line);
  return READ_LINE;
}

/* The prompt, from _PROMPT or _PROMPT2 as in lua, copied into C memory
** since it is used without the GIL. */
static void get_prompt (lua_State *L, int first, char *buf, size_t size) {
  const char *p;
  lua_getglobal(L, first ? "_PROMPT" : "_PROMPT2");
  p = lua_tostring(L, -1);  /* strings and numbers only: runs no code */
  snprintf(buf, size, "%s", p ? p : (first ? "> " : ">> "));
  lua_pop(L, 1);
}

/* }================================================================== */


/*
** {==================================================================
** Completion of names (Tab): globals, keywords, fields of tables
** ===================================================================
*/

/* Completion runs inside readline, without the GIL: it takes the GIL for
** the time it looks at Lua and collects plain C strings. */
static char **cands;
static size_t ncands, candsize, candnext;

static void add_candidate (const char *prefix, size_t plen, const char *name) {
  size_t nlen = strlen(name);
  char *s;
  if (ncands == candsize) {
    size_t newsize = candsize ? 2 * candsize : 64;
    char **nc = (char **)realloc(cands, newsize * sizeof *nc);
    if (nc == NULL)
      return;
    cands = nc;
    candsize = newsize;
  }
  s = (char *)malloc(plen + nlen + 1);
  if (s == NULL)
    return;
  memcpy(s, prefix, plen);
  memcpy(s + plen, name, nlen + 1);
  cands[ncands++] = s;
}

static int is_name (const char *s) {
  if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
    return 0;
  for (s++; *s; s++)
    if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          (*s >= '0' && *s <= '9')))
      return 0;
  return 1;
}

/* Replaces the value on top by its metatable's __index when that is a
** table (how classes and strings find their methods); else pops it and
** returns 0. Only raw accesses: completing a name runs no Lua code. */
static int next_index (lua_State *L) {
  if (!lua_getmetatable(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushliteral(L, "__index");
  lua_rawget(L, -2);
  lua_remove(L, -2);
  lua_remove(L, -2);
  if (lua_istable(L, -1))
    return 1;
  lua_pop(L, 1);
  return 0;
}

/* Replaces the value on top by its field 'k'; pops it and returns 0 if
** there is none. */
static int get_field (lua_State *L, const char *k, size_t len) {
  int depth;
  for (depth = 0; depth < 16; depth++) {
    if (lua_istable(L, -1)) {
      lua_pushlstring(L, k, len);
      lua_rawget(L, -2);
      if (!lua_isnil(L, -1)) {
        lua_remove(L, -2);
        return 1;
      }
      lua_pop(L, 1);
    }
    if (!next_index(L))
      return 0;
  }
  lua_pop(L, 1);
  return 0;
}

/* Adds the fields of the value on top (and pops it) whose names start
** with 'part'. */
static void add_fields (lua_State *L, const char *prefix, size_t plen,
                        const char *part) {
  size_t partlen = strlen(part);
  int depth = 0;
  do {
    if (lua_istable(L, -1)) {
      lua_pushnil(L);
      while (lua_next(L, -2)) {
        if (lua_type(L, -2) == LUA_TSTRING) {
          const char *k = lua_tostring(L, -2);
          /* "_x" names are private, as in Python: "_" shows them */
          if (strncmp(k, part, partlen) == 0 && is_name(k) &&
              (k[0] != '_' || part[0] == '_'))
            add_candidate(prefix, plen, k);
        }
        lua_pop(L, 1);
      }
    }
  } while (++depth < 16 && next_index(L));
}

static const char *const keywords[] = {
  "and", "break", "do", "else", "elseif", "end", "false", "for",
  "function", "goto", "if", "in", "local", "nil", "not", "or", "repeat",
  "return", "then", "true", "until", "while", NULL
};

/* Collects the candidates for the word 'text' (a light userdata):
** "pri" -> globals and keywords, "string.fo" or "s:up" -> fields. */
static int collect (lua_State *L) {
  const char *text = (const char *)lua_touserdata(L, 1);
  const char *sep = strpbrk(text, ".:"), *p = text, *last = NULL;
  const char *const *kw;
  if (sep == NULL) {
    for (kw = keywords; *kw; kw++)
      if (strncmp(*kw, text, strlen(text)) == 0)
        add_candidate("", 0, *kw);
  }
  for (sep = text; (sep = strpbrk(sep, ".:")) != NULL; sep++)
    last = sep;
  lua_pushglobaltable(L);
  while (last != NULL && p < last) {  /* walk "a.b" of "a.b.c" */
    size_t len = strcspn(p, ".:");
    if (!get_field(L, p, len))
      return 0;
    p += len + 1;
  }
  add_fields(L, text, (size_t)(p - text), p);
  return 0;
}

static char *next_candidate (const char *text, int state) {
  (void)text;
  if (state == 0)
    candnext = 0;
  if (candnext < ncands)
    return cands[candnext++];  /* readline frees it */
  free(cands);
  cands = NULL;
  ncands = candsize = candnext = 0;
  return NULL;
}

static char **complete (const char *text, int start, int end) {
  (void)start; (void)end;
  rl_attempted_completion_over = 1;  /* never file names */
  rl_completion_append_character = '\0';
  gilua_acquire(repl_L);
  {
    int top = lua_gettop(repl_L);
    lua_pushcfunction(repl_L, collect);
    lua_pushlightuserdata(repl_L, (void *)text);
    (void)lua_pcall(repl_L, 1, 0, 0);  /* an error just means fewer names */
    lua_settop(repl_L, top);
  }
  gilua_release(repl_L);
  return rl_completion_matches(text, next_candidate);
}

/* }================================================================== */


/*
** {==================================================================
** History
** ===================================================================
*/

/* $GILUA_HISTORY (empty: none) or ~/.gilua_history. */
static char *history_path (void) {
  const char *env = getenv("GILUA_HISTORY");
  const char *home;
  char *path;
  if (env != NULL)
    return *env ? strdup(env) : NULL;
  home = getenv("HOME");
  if (home == NULL || *home == '\0')
    return NULL;
  if (asprintf(&path, "%s/.gilua_history", home) < 0)
    return NULL;
  return path;
}

static void save_history (lua_State *L, int idx) {
  const char *s = lua_tostring(L, idx);
  HIST_ENTRY *last;
  if (!use_readline || s == NULL || *s == '\0')
    return;
  last = history_get(history_base + history_length - 1);
  if (last == NULL || strcmp(last->line, s) != 0)
    add_history(s);
}

/* }================================================================== */


/*
** {==================================================================
** The loop
** ===================================================================
*/

/* Does the syntax error on top say that the source ended too early? */
static int ends_early (lua_State *L, int status) {
  static const char mark[] = "<eof>";
  size_t len;
  const char *msg;
  if (status != LUA_ERRSYNTAX)
    return 0;
  msg = lua_tolstring(L, -1, &len);
  return msg != NULL && len >= sizeof mark - 1 &&
         strcmp(msg + len - (sizeof mark - 1), mark) == 0;
}

/* Compiles the source on top: first as an expression whose values get
** printed ("return " before it, as lua 5.4 does), then as statements.
** Pushes the function and returns LUA_OK; pushes the error and returns
** its status; or pushes nothing and returns INCOMPLETE when more lines
** could complete the source. At end of input ('last') nothing is
** incomplete any more. */
static int compile (lua_State *L, int last) {
  size_t len;
  const char *src = lua_tolstring(L, -1, &len);
  const char *expr = lua_pushfstring(L, "return %s", src);
  int status = luaL_loadbuffer(L, expr, strlen(expr), "=stdin");
  int expr_open;
  lua_remove(L, -2);  /* the "return ..." text */
  if (status == LUA_OK)
    return LUA_OK;
  expr_open = ends_early(L, status);
  lua_pop(L, 1);
  status = luaL_loadbuffer(L, src, len, "=stdin");
  if (status == LUA_OK || last)
    return status;
  /* An unfinished statement, or an unfinished expression ("1 +") that as
  ** a statement is an error anyway: wait for the rest. */
  if (ends_early(L, status) || expr_open) {
    lua_pop(L, 1);
    return INCOMPLETE;
  }
  return status;
}

/* Reads a chunk: a line, and more lines while the source is incomplete.
** Pushes the compiled function (LUA_OK) or an error message (its
** status), or pushes nothing and returns CHUNK_EOF or CHUNK_INTR. */
static int load_chunk (lua_State *L) {
  char prompt[256];
  int status, r;
  get_prompt(L, 1, prompt, sizeof prompt);
  r = read_line(L, prompt);
  if (r != READ_LINE)
    return (r == READ_EOF) ? CHUNK_EOF : CHUNK_INTR;
  if (*lua_tostring(L, -1) == '=') {  /* "=expr": Lua 5.1's way, as lua */
    lua_pushfstring(L, "return %s", lua_tostring(L, -1) + 1);
    lua_remove(L, -2);
  }
  while ((status = compile(L, 0)) == INCOMPLETE) {
    get_prompt(L, 0, prompt, sizeof prompt);
    r = read_line(L, prompt);
    if (r == READ_INTR) {  /* Ctrl-C drops the whole statement */
      lua_pop(L, 1);
      return CHUNK_INTR;
    }
    if (r == READ_EOF) {  /* Ctrl-D: say what is missing */
      status = compile(L, 1);
      break;
    }
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);
  }
  save_history(L, -2);
  lua_remove(L, -2);  /* the source */
  return status;
}

/* Pushes gilua.repr's 'display' (loaded as require would, without
** going through a global 'require' the user may have replaced). */
static int push_display (lua_State *L) {
  static const char mod[] = "gilua.repr";
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, mod) != LUA_TTABLE) {
    lua_pop(L, 1);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_getfield(L, -1, mod);
    lua_remove(L, -2);
    lua_pushstring(L, mod);
    lua_call(L, 1, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, mod);
  }
  lua_getfield(L, -1, "display");
  lua_replace(L, -3);
  lua_pop(L, 1);
  return 1;
}

/* Prints the values above 'base' as lua does, with the global print (so
** that a print the user redefines is used), but a table shows its
** contents (gilua.repr). */
static void print_results (lua_State *L, int base) {
  int n = lua_gettop(L) - base;
  if (n <= 0)
    return;
  luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
  lua_pushcfunction(L, push_display);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) {  /* then as lua does */
    lua_pop(L, 1);
    lua_getglobal(L, "print");
  }
  lua_insert(L, base + 1);
  if (repl_docall(L, n, 0) != LUA_OK)
    gilua_report(L);
}

static void setup_readline (lua_State *L, char **histfile) {
  repl_L = L;
  rl_readline_name = "gilua";  /* for $if gilua in ~/.inputrc */
  rl_catch_signals = 0;        /* Ctrl-C is ours: see read_terminal */
  rl_catch_sigwinch = 1;       /* ... but a resized window is readline's, */
  rl_persistent_signal_handlers = 1;  /* also while poll() waits */
  rl_change_environment = 0;   /* no setenv(LINES) under other threads */
  rl_attempted_completion_function = complete;
  rl_completer_word_break_characters = " \t\n\"\\'`@$><=;|&{(}),[]+-*/%^#~";
  stifle_history(HISTORY_MAX);
  /* Timestamps in the file mark where an entry starts, so that a chunk
  ** of several lines comes back as one entry. */
  history_comment_char = '#';
  history_write_timestamps = 1;
  history_multiline_entries = 1;
  *histfile = history_path();
  if (*histfile)
    (void)read_history(*histfile);
}

void repl_loop (lua_State *L) {
  char *histfile = NULL;
  int top = lua_gettop(L);
  use_readline = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
  loop_thread = pthread_self();
  if (intr_pipe[0] < 0 && pipe2(intr_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
    intr_pipe[0] = intr_pipe[1] = -1;  /* then Ctrl-C waits for a key */
  if (use_readline)
    setup_readline(L, &histfile);
  in_loop = 1;
  reader_sigint(1);
  for (;;) {
    int status = load_chunk(L);
    if (status == CHUNK_EOF)
      break;
    if (status == LUA_OK) {
      int base = lua_gettop(L) - 1;
      status = repl_docall(L, 0, LUA_MULTRET);
      if (status == LUA_OK)
        print_results(L, base);
    }
    if (status != LUA_OK && status != CHUNK_INTR)
      repl_report(L, NULL);
    lua_settop(L, top);
  }
  in_loop = 0;
  reader_sigint(0);
  if (use_readline && histfile) {
    if (write_history(histfile) == 0)
      (void)history_truncate_file(histfile, HISTORY_MAX);
    free(histfile);
  }
  fflush(stdout);
}

/* }================================================================== */
