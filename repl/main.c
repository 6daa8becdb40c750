/*
** main.c: the gilua command.
**
**   gilua [options] [script [args]]
**
** A drop-in for lua5.4: its options, environment variables (LUA_INIT,
** LUA_PATH, LUA_CPATH and their _5_4 forms), messages and exit statuses
** are lua's, in lua's order; gilua's own options come on top.
**
** Reads the whole command line first (so that a bad option stops the
** command before any code runs), opens the interpreter, applies the
** settings, runs LUA_INIT, then -e, -l and -W in the order given, then the
** script (or standard input), then the interactive loop if asked for or
** if there was nothing else to do. gilua_close at the end waits for the
** non-daemon threads, which is Python's rule for program exit.
**
** Options live in one table: adding one (say --gil-stats) is one entry
** with up to four hooks, called at the four moments an option can matter.
*/
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "gilua.h"
#include "repl.h"


/* What the command line asked for. */
typedef struct Cmd {
  int argc;
  char **argv;
  int script;          /* argv index of the script ("-" for stdin), or 0 */
  const char *module;  /* -m: the module run as the program (at 'script') */
  int merge;           /* --merge-traces: argv index of its output file */
  int interactive;     /* -i */
  int version;         /* -v (and -i) */
  int noenv;           /* -E */
  int help;            /* -h */
  int runs_code;       /* -e: no interactive loop unless -i */
  struct Given *given; /* the options, in command-line order */
  int ngiven;
  int badstatus;       /* exit status of a usage error: 1 (lua's) or 2 */
  int status;          /* the command's exit status */
} Cmd;

/* The name messages start with: argv[0], as lua does. */
static const char *progname = PROGNAME;


/*
** {==================================================================
** The option table
** ===================================================================
*/

/* Where an option comes from: lua's own (spelt, checked and listed as
** lua does), a second usage line of lua's option above it, or gilua's. */
enum { LUA_OPT, LUA_OPT_MORE, GILUA_OPT };

typedef struct Option {
  const char *name;    /* "-e" or "--switch-interval" */
  const char *argname; /* NULL: a flag; else the value's name in the usage */
  const char *help;
  int kind;
  /* While the command line is read, before the interpreter exists: check
  ** the value and note what it means in 'c'. Returns NULL, or an error
  ** message (in 'err', of size 'n'). */
  const char *(*parse)(Cmd *c, const char *val, char *err, size_t n);
  /* Once the interpreter is open and before any code runs. Returns 0, or
  ** the command's exit status after it reported an error. */
  int (*setup)(lua_State *L, const char *val);
  /* In command-line order with the other 'run' hooks, before the script.
  ** Returns a Lua status; an error has been reported already. */
  int (*run)(lua_State *L, const char *val);
  /* After gilua_close, when every thread is done. */
  void (*done)(const char *val);
} Option;

typedef struct Given {
  const Option *opt;
  const char *val;
  int at, nwords;      /* where it is in argv: --explore passes it on */
} Given;


/* As in lua, -i implies -v. */
static const char *parse_interactive (Cmd *c, const char *val,
                                      char *err, size_t n) {
  (void)val; (void)err; (void)n;
  c->interactive = c->version = 1;
  return NULL;
}

static const char *parse_noenv (Cmd *c, const char *val,
                                char *err, size_t n) {
  (void)val; (void)err; (void)n;
  c->noenv = 1;
  return NULL;
}

static const char *parse_version (Cmd *c, const char *val,
                                  char *err, size_t n) {
  (void)val; (void)err; (void)n;
  c->version = 1;
  return NULL;
}

static const char *parse_help (Cmd *c, const char *val, char *err, size_t n) {
  (void)val; (void)err; (void)n;
  c->help = 1;
  return NULL;
}

static const char *parse_execute (Cmd *c, const char *val,
                                  char *err, size_t n) {
  (void)val; (void)err; (void)n;
  c->runs_code = 1;
  return NULL;
}

/* Prints the error on top as lua does outside the loop: "progname: ". */
static int report (lua_State *L, int status) {
  if (status != LUA_OK)
    repl_report(L, progname);
  return status;
}

static int run_execute (lua_State *L, const char *code) {
  int status = luaL_loadbuffer(L, code, strlen(code), "=(command line)");
  if (status == LUA_OK)
    status = repl_docall(L, 0, 0);
  return report(L, status);
}

/* -l mod puts require("mod") in global 'mod'; -l g=mod in global 'g'. */
static int run_library (lua_State *L, const char *val) {
  const char *eq = strchr(val, '=');
  const char *mod = eq ? eq + 1 : val;
  int status;
  lua_getglobal(L, "require");
  lua_pushstring(L, mod);
  status = repl_docall(L, 1, 1);
  if (status != LUA_OK)
    return report(L, status);
  if (eq)
    lua_pushlstring(L, val, (size_t)(eq - val));
  else
    lua_pushstring(L, val);
  lua_insert(L, -2);
  lua_setglobal(L, lua_tostring(L, -2));
  lua_pop(L, 1);
  return LUA_OK;
}

/* At its place among -e and -l, as in lua: warnings from code before it
** are not shown. */
static int run_warnings (lua_State *L, const char *val) {
  (void)val;
  lua_warning(L, "@on", 0);
  return LUA_OK;
}

/* Python's sys.setswitchinterval accepts any strictly positive float. */
static const char *parse_interval (Cmd *c, const char *val,
                                   char *err, size_t n) {
  char *end;
  double s;
  (void)c;
  errno = 0;
  s = strtod(val, &end);
  if (end == val || *end != '\0' || errno != 0 || !isfinite(s) || s <= 0) {
    snprintf(err, n, "bad value '%s' for --switch-interval "
             "(seconds, a number > 0, e.g. 0.005)", val);
    return err;
  }
  return NULL;
}

static int setup_interval (lua_State *L, const char *val) {
  (void)L;
  gilua_setswitchinterval(strtod(val, NULL));
  return 0;
}

/* --gil-policy=NAME: a name gilua_gilpolicyname lists. */
static const char *parse_policy (Cmd *c, const char *val, char *err,
                                 size_t n) {
  size_t len;
  int i;
  (void)c;
  for (i = 0; gilua_gilpolicyname(i); i++)
    if (strcmp(val, gilua_gilpolicyname(i)) == 0) return NULL;
  len = (size_t)snprintf(err, n, "unknown GIL policy '%s' for --gil-policy "
                         "(the policies are:", val);
  for (i = 0; gilua_gilpolicyname(i) && len < n; i++)
    len += (size_t)snprintf(err + len, n - len, "%s %s", i ? "," : "",
                            gilua_gilpolicyname(i));
  if (len < n) snprintf(err + len, n - len, ")");
  return err;
}

static int setup_policy (lua_State *L, const char *val) {
  (void)L;
  gilua_setgilpolicy(val);
  return 0;
}

/*
** --gil-stats, --gil-trace=FILE, --gil-timeline=FILE.html. Given together,
** the trace and the timeline come from one recording: the JSON file is
** written first, and the page is made from it. The reports are written
** by the process that started them (not by a fork child that returns
** through main).
*/
static struct {
  const char *trace, *timeline;
  int tracing;
  pid_t pid;
} gilview;

/*
** In the file names, %r is the process's rank in an MPI job (from the
** variables mpiexec sets: Open MPI's, PMIx's, MPICH's; 0 outside a job),
** %p its pid and %% a '%': `mpiexec -n 3 gilua --gil-trace=rank%r.json`
** gives each rank its file. The result lives as long as the program.
*/
static const char *expand_path (const char *val) {
  static const char *const rankvars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK",
                                         "PMI_RANK", NULL};
  size_t cap = strlen(val) * 4 + 64, n = 0;
  char *out = malloc(cap);
  const char *p;
  if (out == NULL) return val;
  for (p = val; *p && n + 24 < cap; p++) {
    if (p[0] == '%' && (p[1] == 'r' || p[1] == 'p' || p[1] == '%')) {
      const char *rank = NULL;
      int i;
      p++;
      if (*p == '%') out[n++] = '%';
      else if (*p == 'p') n += (size_t)snprintf(out + n, cap - n, "%ld", (long)getpid());
      else {
        for (i = 0; rankvars[i] && rank == NULL; i++) rank = getenv(rankvars[i]);
        n += (size_t)snprintf(out + n, cap - n, "%s", rank ? rank : "0");
      }
    }
    else out[n++] = *p;
  }
  out[n] = '\0';
  return out;
}

/* The file must be creatable now: finding out at exit would waste the run. */
static const char *parse_outfile (const char *opt, const char *val,
                                  char *err, size_t n) {
  FILE *f = (*val != '\0') ? fopen(val, "a") : NULL;
  if (f == NULL) {
    snprintf(err, n, "cannot write %s file '%s': %s", opt, val,
             *val ? strerror(errno) : "empty name");
    return err;
  }
  fclose(f);
  return NULL;
}

static const char *parse_trace (Cmd *c, const char *val, char *err, size_t n) {
  (void)c;
  gilview.trace = expand_path(val);
  return parse_outfile("--gil-trace", gilview.trace, err, n);
}

static const char *parse_timeline (Cmd *c, const char *val,
                                   char *err, size_t n) {
  (void)c;
  gilview.timeline = expand_path(val);
  return parse_outfile("--gil-timeline", gilview.timeline, err, n);
}

static int setup_tracing (lua_State *L, const char *val) {
  const char *path = gilview.trace ? gilview.trace : gilview.timeline;
  (void)L; (void)val;
  if (gilview.tracing) return 0;
  gilview.pid = getpid();
  if (gilua_trace_start(path) != 0)
    fprintf(stderr, "%s: cannot trace the GIL to '%s': %s\n", progname, path,
            strerror(errno));
  else
    gilview.tracing = 1;
  return 0;
}

static void done_tracing (const char *val) {
  (void)val;
  if (!gilview.tracing || getpid() != gilview.pid) return;
  gilview.tracing = 0;
  if (gilua_trace_stop() < 0)
    fprintf(stderr, "%s: cannot write the GIL trace: %s\n", progname,
            strerror(errno));
  else if (gilview.trace && gilview.timeline &&
           gilua_timeline(gilview.trace, gilview.timeline) != 0)
    fprintf(stderr, "%s: cannot write the GIL timeline '%s': %s\n", progname,
            gilview.timeline, strerror(errno));
}

static int setup_stats (lua_State *L, const char *val) {
  (void)L; (void)val;
  gilview.pid = getpid();
  return 0;
}

static void done_stats (const char *val) {
  (void)val;
  if (getpid() == gilview.pid) gilua_printstats(stderr);
}

/*
** The deterministic scheduler: --sched=MODE, --seed=N, and --explore=N,
** which runs the script N times under N seeds (stdlib/sys/explore.lua) and
** runs nothing itself. A bad value of these exits with 2, as a bad usage
** of --explore must (its 1 means "the runs differ").
*/
static struct {
  const char *mode;          /* --sched, or NULL */
  unsigned long long seed;   /* --seed, 0 by default */
  int seeded;                /* --seed given */
  long runs;                 /* --explore: the number of runs, or 0 */
} sched;

#define EXPLORE_MAX 1000000L

/* The modes of gilua.h; whether this build runs one is gilua_setscheduler's
** answer, once the interpreter is open. */
static const char *const sched_modes[] = {"random", "off", NULL};

static const char *parse_sched (Cmd *c, const char *val, char *err,
                                size_t n) {
  int i;
  for (i = 0; sched_modes[i]; i++)
    if (strcmp(val, sched_modes[i]) == 0) {
      sched.mode = sched_modes[i];
      return NULL;
    }
  c->badstatus = 2;
  snprintf(err, n, "unknown scheduler mode '%s' for --sched "
           "(the modes are: random, off)", val);
  return err;
}

/* A decimal number, digits only (strtoull alone takes "-1", " 1", "+1"). */
static int parse_unsigned (const char *val, unsigned long long *out) {
  const char *p;
  char *end;
  if (*val == '\0') return 0;
  for (p = val; *p; p++)
    if (!isdigit((unsigned char)*p)) return 0;
  errno = 0;
  *out = strtoull(val, &end, 10);
  return errno == 0 && *end == '\0';
}

static const char *parse_seed (Cmd *c, const char *val, char *err,
                               size_t n) {
  if (parse_unsigned(val, &sched.seed)) {
    sched.seeded = 1;
    return NULL;
  }
  c->badstatus = 2;
  snprintf(err, n, "bad value '%s' for --seed (an integer from 0 to %llu)",
           val, ULLONG_MAX);
  return err;
}

static const char *parse_explore (Cmd *c, const char *val, char *err,
                                  size_t n) {
  unsigned long long runs;
  c->badstatus = 2;  /* from here on, any usage error */
  if (parse_unsigned(val, &runs) && runs >= 1 && runs <= EXPLORE_MAX) {
    sched.runs = (long)runs;
    return NULL;
  }
  snprintf(err, n, "bad value '%s' for --explore (a number of runs, "
           "from 1 to %ld)", val, EXPLORE_MAX);
  return err;
}

/* Right after the interpreter opens, with --gil-policy: no thread yet. */
static int setup_sched (lua_State *L, const char *val) {
  (void)L; (void)val;
  if (gilua_setscheduler(sched.mode, sched.seed) == 0)
    return 0;
  if (errno == EINVAL)
    fprintf(stderr, "%s: scheduler mode '%s' is not available in this "
            "build (--sched)\n", progname, sched.mode);
  else
    fprintf(stderr, "%s: cannot set scheduler mode '%s' (--sched): %s\n",
            progname, sched.mode, strerror(errno));
  return 2;
}

/* lua's options first, in the order and words of lua's usage message. */
static const Option options[] = {
  {"-e", "stat", "execute string 'stat'", LUA_OPT,
   parse_execute, NULL, run_execute, NULL},
  {"-i", NULL, "enter interactive mode after executing 'script'", LUA_OPT,
   parse_interactive, NULL, NULL, NULL},
  {"-l", "mod", "require library 'mod' into global 'mod'", LUA_OPT,
   NULL, NULL, run_library, NULL},
  {"-l", "g=mod", "require library 'mod' into global 'g'", LUA_OPT_MORE,
   NULL, NULL, NULL, NULL},
  {"-v", NULL, "show version information", LUA_OPT,
   parse_version, NULL, NULL, NULL},
  {"-E", NULL, "ignore environment variables", LUA_OPT,
   parse_noenv, NULL, NULL, NULL},
  {"-W", NULL, "turn warnings on", LUA_OPT,
   NULL, NULL, run_warnings, NULL},
  {"-h", NULL, "show this help and exit", GILUA_OPT,
   parse_help, NULL, NULL, NULL},
  {"--help", NULL, "same as -h", GILUA_OPT,
   parse_help, NULL, NULL, NULL},
  {"-m", "mod", "run module 'mod' as the program (Python's -m)", GILUA_OPT,
   NULL, NULL, NULL, NULL},
  {"--switch-interval", "S", "hand the GIL over every S seconds "
   "(default 0.005)", GILUA_OPT, parse_interval, setup_interval, NULL, NULL},
  {"--gil-policy", "NAME", "the GIL's policy: new (default), old, "
   "io-priority or fifo", GILUA_OPT, parse_policy, setup_policy, NULL, NULL},
  {"--sched", "MODE", "random: a seed decides every GIL switch and time "
   "is virtual; off (default)", GILUA_OPT,
   parse_sched, setup_sched, NULL, NULL},
  {"--seed", "N", "the seed of --sched=random (0 to 2^64-1, default 0)",
   GILUA_OPT, parse_seed, NULL, NULL, NULL},
  {"--explore", "N", "run the script N times under --sched=random, "
   "seeds 1..N, and list the distinct outcomes",
   GILUA_OPT, parse_explore, NULL, NULL, NULL},
  {"--gil-stats", NULL, "print GIL statistics on stderr at exit", GILUA_OPT,
   NULL, setup_stats, NULL, done_stats},
  {"--gil-trace", "FILE", "record the GIL's hand-overs into FILE "
   "(Chrome trace JSON, for Perfetto)", GILUA_OPT,
   parse_trace, setup_tracing, NULL, done_tracing},
  {"--gil-timeline", "FILE", "draw the GIL's hand-overs as an HTML "
   "timeline in FILE", GILUA_OPT,
   parse_timeline, setup_tracing, NULL, done_tracing},
  {"--merge-traces", "OUT", "merge the traces named after OUT (one per "
   "process: MPI ranks...) into OUT, one group per process", GILUA_OPT,
   NULL, NULL, NULL, NULL},
  {NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL}
};

/* }================================================================== */


/* lua's usage message, word for word, then gilua's own options. */
static void print_usage (FILE *f) {
  const Option *o;
  fprintf(f, "usage: %s [options] [script [args]]\n"
             "Available options are:\n", progname);
  for (o = options; o->name; o++) {
    char left[64];
    if (o->kind == GILUA_OPT)
      continue;
    snprintf(left, sizeof left, "%s%s%s", o->name, o->argname ? " " : "",
             o->argname ? o->argname : "");
    fprintf(f, "  %-9s %s\n", left, o->help);
  }
  fprintf(f, "  %-9s %s\n", "--", "stop handling options");
  fprintf(f, "  %-9s %s\n", "-", "stop handling options and execute stdin");
  fprintf(f, "%s's own options:\n", PROGNAME);
  for (o = options; o->name; o++) {
    char left[64];
    if (o->kind != GILUA_OPT)
      continue;
    if (o->argname == NULL)
      snprintf(left, sizeof left, "%s", o->name);
    else if (o->name[1] == '-')  /* long options take --name=VALUE */
      snprintf(left, sizeof left, "%s=%s", o->name, o->argname);
    else
      snprintf(left, sizeof left, "%s %s", o->name, o->argname);
    fprintf(f, "  %-22s %s\n", left, o->help);
  }
  fflush(f);
}

/* Prints a command-line error and the usage; the command exits with 1. */
static int bad_usage (const char *fmt, const char *what) {
  fprintf(stderr, "%s: ", progname);
  fprintf(stderr, fmt, what);
  fputc('\n', stderr);
  print_usage(stderr);
  return 0;
}

/* Finds the option that 'arg' names; sets '*inlined' to the value written
** in the same word ("-ecode", "--switch-interval=S"), if any. A flag of
** lua's takes nothing after it: "-ix" is unrecognized, as in lua. */
static const Option *find_option (const char *arg, const char **inlined) {
  const Option *o;
  *inlined = NULL;
  for (o = options; o->name; o++) {
    size_t len = strlen(o->name);
    if (o->kind == LUA_OPT_MORE || strncmp(arg, o->name, len) != 0)
      continue;
    if (arg[len] == '\0')
      return o;
    if (o->name[1] == '-' && arg[len] == '=') {  /* --name=value */
      *inlined = arg + len + 1;
      return o;
    }
    if (o->name[1] != '-' && o->argname != NULL) {  /* -evalue, as lua */
      *inlined = arg + len;
      return o;
    }
  }
  return NULL;
}

static int is_sched_option (const Option *o) {
  return o->parse == parse_sched || o->parse == parse_seed ||
         o->parse == parse_explore;
}

/* Reads the options up to the script name. Returns 0 after printing
** a usage error. */
static int parse_args (Cmd *c) {
  char err[256];
  int i, at;
  for (i = 1; i < c->argc; i++) {
    const char *arg = c->argv[i], *val;
    const Option *o;
    if (arg[0] != '-' || strcmp(arg, "-") == 0) {  /* script (or stdin) */
      c->script = i;
      return 1;
    }
    if (strcmp(arg, "--") == 0) {
      if (i + 1 < c->argc)
        c->script = i + 1;
      return 1;
    }
    if (strcmp(arg, "--merge-traces") == 0 ||
        strncmp(arg, "--merge-traces=", 15) == 0) {  /* the rest: files */
      if (arg[14] == '\0' && i + 1 >= c->argc)
        return bad_usage("option '%s' needs a value", "--merge-traces");
      if (arg[14] == '\0') i++;
      c->merge = i;
      return 1;
    }
    if (strncmp(arg, "-m", 2) == 0) {  /* -m mod or -mmod: the program */
      if (arg[2] == '\0' && i + 1 >= c->argc)
        return bad_usage("option '%s' needs a value", "-m");
      if (arg[2] == '\0') i++;
      c->module = arg[2] ? arg + 2 : c->argv[i];
      c->script = i;
      return 1;
    }
    at = i;
    o = find_option(arg, &val);
    if (o == NULL)
      return bad_usage("unrecognized option '%s'", arg);
    if (o->argname == NULL && val != NULL)
      return bad_usage("option '%s' takes no value", o->name);
    if (is_sched_option(o) && val == NULL && i + 1 >= c->argc)
      c->badstatus = 2;  /* "--seed" last: its value is missing */
    if (o->argname != NULL && val == NULL) {
      /* lua takes a value that looks like an option for a missing one */
      if (i + 1 >= c->argc ||
          (o->kind == LUA_OPT && c->argv[i + 1][0] == '-'))
        return bad_usage(o->kind == LUA_OPT ? "'%s' needs argument"
                                            : "option '%s' needs a value",
                         o->name);
      val = c->argv[++i];
    }
    if (o->parse) {
      const char *msg = o->parse(c, val, err, sizeof err);
      if (msg) {  /* the option is right, its value is not: no usage */
        fprintf(stderr, "%s: %s\n", progname, msg);
        return 0;
      }
    }
    c->given[c->ngiven].opt = o;
    c->given[c->ngiven].val = val;
    c->given[c->ngiven].at = at;
    c->given[c->ngiven].nwords = i - at + 1;
    c->ngiven++;
  }
  return 1;
}


/*
** What the scheduler's options ask of the rest of the command line, once
** it is all read. --explore runs a script file, with the other options
** passed on to each run; what cannot be shared by N runs (standard input,
** the interactive loop, one trace file) is refused. Returns 0 after
** printing why.
*/
static int check_sched (Cmd *c) {
  const char *why = NULL;
  int i;
  if (sched.runs == 0) {
    if (sched.seeded && sched.mode == NULL)
      why = "--seed needs --sched=random or --explore";
  }
  else if (c->merge || c->module)
    why = "--explore runs a script file, not --merge-traces or -m";
  else if (c->script == 0 || (strcmp(c->argv[c->script], "-") == 0 &&
                              strcmp(c->argv[c->script - 1], "--") != 0))
    why = "--explore needs a script file (gilua --explore=N script.lua)";
  else if (c->interactive)
    why = "--explore cannot run the interactive loop (-i)";
  else
    for (i = 0; i < c->ngiven && why == NULL; i++)
      if (c->given[i].opt->setup == setup_tracing)
        why = "--explore cannot write one GIL trace for many runs "
              "(--gil-trace, --gil-timeline)";
  if (why == NULL)
    return 1;
  fprintf(stderr, "%s: %s\n", progname, why);
  c->badstatus = 2;
  return 0;
}

/*
** --explore=N: require("sys.explore").main{...}, whose result is the exit
** status. The options other than the scheduler's are passed on to every
** run, as they were written.
*/
static int run_explore (lua_State *L, Cmd *c) {
  int i, k, n = 0, status;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "sys.explore");
  status = repl_docall(L, 1, 1);
  if (status != LUA_OK) {
    report(L, status);
    return 2;
  }
  lua_getfield(L, -1, "main");
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, (lua_Integer)sched.runs);
  lua_setfield(L, -2, "runs");
  lua_pushinteger(L, (lua_Integer)sched.seed);  /* the same 64 bits */
  lua_setfield(L, -2, "seed");
  lua_pushstring(L, sched.mode ? sched.mode : "random");
  lua_setfield(L, -2, "mode");
  lua_pushstring(L, progname);
  lua_setfield(L, -2, "prog");
  lua_pushstring(L, c->argv[c->script]);
  lua_setfield(L, -2, "script");
  lua_createtable(L, c->argc - c->script - 1, 0);
  for (i = c->script + 1; i < c->argc; i++) {
    lua_pushstring(L, c->argv[i]);
    lua_rawseti(L, -2, i - c->script);
  }
  lua_setfield(L, -2, "args");
  lua_newtable(L);
  for (i = 0; i < c->ngiven; i++) {
    const Option *o = c->given[i].opt;
    if (is_sched_option(o))
      continue;
    for (k = 0; k < c->given[i].nwords; k++) {
      lua_pushstring(L, c->argv[c->given[i].at + k]);
      lua_rawseti(L, -2, ++n);
    }
  }
  lua_setfield(L, -2, "options");
  status = repl_docall(L, 1, 1);
  if (status != LUA_OK) {
    report(L, status);
    return 2;
  }
  status = (int)lua_tointeger(L, -1);
  lua_pop(L, 2);
  return status;
}


/* The global 'arg' as lua makes it: arg[0] is the script, arg[1..] its
** arguments, and the interpreter and its options at negative indexes.
** Without a script, arg[0] is the interpreter. */
static void create_arg (lua_State *L, Cmd *c) {
  int i;
  lua_createtable(L, c->argc - c->script - 1, c->script + 1);
  for (i = 0; i < c->argc; i++) {
    lua_pushstring(L, c->argv[i]);
    lua_rawseti(L, -2, i - c->script);
  }
  lua_setglobal(L, "arg");
}

/* Runs the script with the elements of the global 'arg' as '...' (as
** lua: code before the script may change them). A "-" right after "--"
** is a file named "-"; otherwise it means standard input. */
static int run_script (lua_State *L, Cmd *c) {
  const char *fname = c->argv[c->script];
  int i, n, status;
  if (strcmp(fname, "-") == 0 && strcmp(c->argv[c->script - 1], "--") != 0)
    fname = NULL;
  status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    if (lua_getglobal(L, "arg") != LUA_TTABLE)
      luaL_error(L, "'arg' is not a table");
    n = (int)luaL_len(L, -1);
    luaL_checkstack(L, n + 3, "too many arguments to script");
    for (i = 1; i <= n; i++)
      lua_rawgeti(L, -i, i);
    lua_remove(L, -i);
    status = repl_docall(L, n, 0);
  }
  return report(L, status);
}

/*
** -m mod: the module found as require would find it, its chunk run with
** "__main__" as its name (Python's runpy), so the module can tell that it
** is the program: `if ... == "__main__" then`. Its arguments are in 'arg'
** (arg[0] is the module's name). It is not put in package.loaded.
*/
static const char run_module_code[] =
  "local name = ...\n"
  "local why = {}\n"
  "for _, searcher in ipairs(package.searchers) do\n"
  "  local loader, extra = searcher(name)\n"
  "  if type(loader) == 'function' then return loader('__main__', extra) end\n"
  "  if type(loader) == 'string' then why[#why + 1] = '\\n\\t' .. loader end\n"
  "end\n"
  "error(ModuleNotFoundError(('No module named \\'%s\\':%s'):format(name,\n"
  "  table.concat(why))))\n";

static int run_module (lua_State *L, Cmd *c) {
  int status = luaL_loadbuffer(L, run_module_code, sizeof run_module_code - 1,
                               "=(command line)");
  if (status == LUA_OK) {
    if (lua_getglobal(L, "arg") == LUA_TTABLE) {  /* "-mmod" is one word */
      lua_pushstring(L, c->module);
      lua_rawseti(L, -2, 0);
    }
    lua_pop(L, 1);
    lua_pushstring(L, c->module);
    status = repl_docall(L, 1, 0);
  }
  return report(L, status);
}

/* --merge-traces OUT FILE...: gil.merge_traces(OUT, {FILE...}). */
static int run_merge (lua_State *L, Cmd *c) {
  const char *arg = c->argv[c->merge], *out;
  int i, status;
  out = strncmp(arg, "--merge-traces=", 15) == 0 ? arg + 15 : arg;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "gil");
  status = repl_docall(L, 1, 1);
  if (status == LUA_OK) {
    lua_getfield(L, -1, "merge_traces");
    lua_remove(L, -2);
    lua_pushstring(L, out);
    lua_createtable(L, c->argc - c->merge - 1, 0);
    for (i = c->merge + 1; i < c->argc; i++) {
      lua_pushstring(L, c->argv[i]);
      lua_rawseti(L, -2, i - c->merge);
    }
    status = repl_docall(L, 2, 2);
  }
  if (status == LUA_OK) {
    printf("%s: %lld events from %lld traces\n", out,
           (long long)lua_tointeger(L, -2), (long long)lua_tointeger(L, -1));
    lua_pop(L, 2);
  }
  return report(L, status);
}

static int run_stdin (lua_State *L) {
  int status = luaL_loadfile(L, NULL);
  if (status == LUA_OK)
    status = repl_docall(L, 0, 0);
  return report(L, status);
}

/* LUA_INIT_5_4, else LUA_INIT: Lua code, or "@file" to run. */
#define INIT_VAR "LUA_INIT"
#define INIT_VAR_VERSION INIT_VAR "_" LUA_VERSION_MAJOR "_" LUA_VERSION_MINOR

static int run_init (lua_State *L) {
  const char *name = "=" INIT_VAR_VERSION;
  const char *init = getenv(name + 1);
  int status;
  if (init == NULL) {
    name = "=" INIT_VAR;
    init = getenv(name + 1);
  }
  if (init == NULL)
    return LUA_OK;
  if (init[0] == '@')
    status = luaL_loadfile(L, init + 1);
  else
    status = luaL_loadbuffer(L, init, strlen(init), name);
  if (status == LUA_OK)
    status = repl_docall(L, 0, 0);
  return report(L, status);
}

/* Everything that needs the interpreter, in protected mode so that a
** memory error in here is reported instead of aborting. Each step runs
** only if the ones before it succeeded, as in lua (so -i after a failed
** script exits with 1 rather than starting the loop). */
static int pmain (lua_State *L) {
  Cmd *c = (Cmd *)lua_touserdata(L, 1);
  int i, status = LUA_OK;
  lua_settop(L, 0);
  if (sched.runs) {  /* the runs do the rest, each in its own gilua */
    c->status = run_explore(L, c);
    return 0;
  }
  if (c->version) {
    puts(REPL_VERSION_LINE);
    fflush(stdout);
  }
  if (c->noenv) {  /* for whatever else asks, as lua's libraries do */
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  create_arg(L, c);
  lua_pushliteral(L, "__main__");  /* Python's name for the main program */
  lua_setglobal(L, "__name__");
  for (i = 0; i < c->ngiven; i++)
    if (c->given[i].opt->setup &&
        (c->status = c->given[i].opt->setup(L, c->given[i].val)) != 0)
      return 0;
  if (!c->noenv)
    status = run_init(L);
  for (i = 0; i < c->ngiven && status == LUA_OK; i++)
    if (c->given[i].opt->run)
      status = c->given[i].opt->run(L, c->given[i].val);
  if (status == LUA_OK && c->merge)
    status = run_merge(L, c);
  else if (status == LUA_OK && c->script)
    status = c->module ? run_module(L, c) : run_script(L, c);
  if (status == LUA_OK && c->interactive)
    repl_loop(L);
  else if (status == LUA_OK && !c->script && !c->merge && !c->runs_code &&
           !c->version) {
    if (isatty(STDIN_FILENO)) {
      puts(REPL_VERSION_LINE);
      repl_loop(L);
    }
    else  /* as lua: "gilua < file" runs the file */
      status = run_stdin(L);
  }
  c->status = (status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
  return 0;
}


/*
** -E: package.path and package.cpath are set from LUA_PATH and LUA_CPATH
** when the interpreter opens its libraries, so these are hidden from it
** then, and put back: os.getenv and child processes still see them, as
** under lua -E. Nothing else runs yet, so no other thread reads the
** environment meanwhile.
*/
#define ENV_VERSION "_" LUA_VERSION_MAJOR "_" LUA_VERSION_MINOR
static const char *const path_vars[] = {
  "LUA_PATH" ENV_VERSION, "LUA_PATH", "LUA_CPATH" ENV_VERSION, "LUA_CPATH",
  NULL
};

static lua_State *open_interpreter (const Cmd *c) {
  char *saved[sizeof path_vars / sizeof path_vars[0]] = {NULL};
  lua_State *L;
  int i;
  if (!c->noenv)
    return gilua_open();
  for (i = 0; path_vars[i]; i++) {
    const char *v = getenv(path_vars[i]);
    if (v != NULL && (saved[i] = strdup(v)) != NULL)
      unsetenv(path_vars[i]);
  }
  L = gilua_open();
  for (i = 0; path_vars[i]; i++) {
    if (saved[i] != NULL)
      setenv(path_vars[i], saved[i], 1);
    free(saved[i]);
  }
  return L;
}


int main (int argc, char **argv) {
  Cmd c;
  lua_State *L;
  int i;
  memset(&c, 0, sizeof c);
  c.argc = argc;
  c.argv = argv;
  c.status = EXIT_FAILURE;
  c.badstatus = EXIT_FAILURE;
  if (argc < 1 || argv[0] == NULL) {  /* execve with no argv at all */
    static char *noargs[] = {PROGNAME, NULL};
    c.argc = 1;
    c.argv = noargs;
  }
  if (c.argv[0][0] != '\0')
    progname = c.argv[0];
  c.given = (Given *)calloc((size_t)c.argc, sizeof(Given));
  if (c.given == NULL) {
    fprintf(stderr, "%s: not enough memory\n", progname);
    return EXIT_FAILURE;
  }
  if (!parse_args(&c) || !check_sched(&c)) {
    free(c.given);
    return c.badstatus;
  }
  if (c.help) {
    print_usage(stdout);
    free(c.given);
    return EXIT_SUCCESS;
  }
  L = open_interpreter(&c);
  if (L == NULL) {
    fprintf(stderr, "%s: cannot create state: not enough memory\n",
            progname);
    free(c.given);
    return EXIT_FAILURE;
  }
  lua_pushcfunction(L, pmain);
  lua_pushlightuserdata(L, &c);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    repl_report(L, progname);
    c.status = EXIT_FAILURE;
  }
  fflush(stdout);
  gilua_close(L);  /* waits for the non-daemon threads */
  for (i = 0; i < c.ngiven; i++)
    if (c.given[i].opt->done)
      c.given[i].opt->done(c.given[i].val);
  free(c.given);
  return c.status;
}
