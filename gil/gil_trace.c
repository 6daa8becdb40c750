/*
** gil_trace.c: writing what gil.c recorded. A trace becomes Chrome
** trace-event JSON (Perfetto and chrome://tracing open it) or the timeline
** page (gil/timeline.html with the JSON inside); the statistics become the
** summary table of --gil-stats.
**
** gil.c records raw events per thread (take, release and why, start of a
** wait, drop request). Each thread's events turn here into
** - spans ("X" events), one per state the thread was in: "running" (holds
**   the GIL), "waiting for GIL", "blocked" (released it around a blocking
**   call), which is what a timeline draws;
** - instant events ("i"), one per raw event: "acquire", "blocking-call
**   release", "forced release", "check-interval release" (policy old: the
**   holder let go at a check and another thread got in), "release" (the
**   thread left), "drop request" (posted by a waiter; args name the holder
**   it was meant for) and "policy" (the policy changed; args name it).
** Timestamps are CLOCK_MONOTONIC in microseconds, as the format wants.
** A trace may hold several GILs (one per interpreter), each a group of
** lanes.
*/
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "gil.h"

#define TIMELINE_TEMPLATE "gil/timeline.html"
#define TRACE_MARK "@GIL_TRACE@"

struct gilua_resource { const char *path, *data; size_t len; };
extern const struct gilua_resource gilua_resources[];

/* The running trace's output is the GIL's out_file, out_path and
** out_html, under its out_lock: start and stop may come from any thread. */


/*
** {======================================================
** JSON
** =======================================================
*/

/* A JSON string. '<', '>' and '&' are escaped too, so that the text can
** sit inside an HTML <script> element as it is. */
static void jstr (FILE *f, const char *s) {
  putc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20 || c == '<' || c == '>' || c == '&')
      fprintf(f, "\\u%04x", c);
    else putc(c, f);
  }
  putc('"', f);
}


static const char *const statename[] = {"blocked", "waiting for GIL",
                                        "running"};

/*
** The events are most of the file, and a long trace has millions: each is
** put together in a line buffer with the number formatting done here
** (fprintf's "%.3f" would be most of the cost), then written at once.
** Event names are constants that need no escaping; thread names go
** through jstr.
*/
typedef struct W {
  FILE *f;
  int pid;
  int first;                    /* no event written yet */
  gil_tbuf *all;                /* for holder names */
  char *p;                      /* end of the line being made */
  char line[256];
} W;


static void add (W *w, const char *s) {
  while (*s) *w->p++ = *s++;
}


static void addint (W *w, unsigned long long v) {
  char tmp[24];
  int n = 0;
  do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
  while (n) *w->p++ = tmp[--n];
}


/* v >= 0 with three decimals, rounded as "%.3f" would. */
static void add3 (W *w, double v) {
  unsigned long long m = (unsigned long long)(v * 1000.0 + 0.5);
  unsigned frac = (unsigned)(m % 1000);
  addint(w, m / 1000);
  *w->p++ = '.';
  *w->p++ = (char)('0' + frac / 100);
  *w->p++ = (char)('0' + frac / 10 % 10);
  *w->p++ = (char)('0' + frac % 10);
}


static void flush (W *w) {
  fwrite(w->line, 1, (size_t)(w->p - w->line), w->f);
  w->p = w->line;
}


/* Starts an event; t < 0: no timestamp (metadata). */
static void begin (W *w, const char *ph, const char *name, long tid,
                   double t) {
  w->p = w->line;
  add(w, w->first ? "\n{\"ph\":\"" : ",\n{\"ph\":\"");
  w->first = 0;
  add(w, ph);
  add(w, "\",\"name\":\"");
  add(w, name);
  add(w, "\",\"pid\":");
  addint(w, (unsigned long long)w->pid);
  add(w, ",\"tid\":");
  addint(w, (unsigned long long)tid);
  if (t >= 0) {
    add(w, ",\"ts\":");
    add3(w, t * 1e6);
  }
}


static void span (W *w, long tid, int state, double from, double to) {
  if (to <= from) return;
  begin(w, "X", statename[state], tid, from);
  add(w, ",\"dur\":");
  add3(w, (to - from) * 1e6);
  add(w, ",\"cat\":\"gil\"}");
  flush(w);
}


/* An instant event; 'args' (or NULL) ends it. */
static void instant (W *w, long tid, const char *name, double t,
                     const char *args) {
  begin(w, "i", name, tid, t);
  add(w, ",\"s\":\"t\",\"cat\":\"gil\"");
  if (args) add(w, args);
  else add(w, "}");
}


static const char *nameof (W *w, long tid) {
  gil_tbuf *b;
  for (b = w->all; b; b = b->next)
    if (b->tid == tid) return b->name;
  return "?";
}


/* One thread's events, as spans and instants. */
static void thread_events (W *w, gil_tbuf *b) {
  int state = -1;               /* none yet, or gone */
  double since = 0;
  gil_chunk *c;
  int i;
  for (c = b->first; c; c = c->next) {
    for (i = 0; i < c->n; i++) {
      gil_event *e = &c->ev[i];
      int next = state;
      switch (e->kind) {
        case EV_STATE: next = (int)e->arg; break;
        case EV_WANT: next = GIL_WAITING; break;
        case EV_TAKE:
          instant(w, b->tid, "acquire", e->t, ",\"args\":{\"waited_ms\":");
          add3(w, state == GIL_WAITING ? (e->t - since) * 1e3 : 0.0);
          add(w, "}}");
          flush(w);
          next = GIL_RUNNING;
          break;
        case EV_REL_BLOCK:
          instant(w, b->tid, "blocking-call release", e->t, NULL);
          flush(w);
          next = GIL_BLOCKED;
          break;
        case EV_REL_FORCED:
          instant(w, b->tid, "forced release", e->t, NULL);
          flush(w);
          next = GIL_WAITING;
          break;
        case EV_REL_TICK:
          instant(w, b->tid, "check-interval release", e->t, NULL);
          flush(w);
          next = GIL_WAITING;
          break;
        case EV_POLICY:
          instant(w, b->tid, "policy", e->t, ",\"args\":{\"policy\":");
          flush(w);
          jstr(w->f, ((const gil_policy *)(uintptr_t)e->arg)->name);
          fputs("}}", w->f);
          break;
        case EV_REL_EXIT:
          instant(w, b->tid, "release", e->t,
                  ",\"args\":{\"reason\":\"thread left\"}}");
          flush(w);
          next = -1;
          break;
        case EV_DROP:
          instant(w, b->tid, "drop request", e->t, ",\"args\":{\"holder\":");
          addint(w, (unsigned long long)e->arg);
          add(w, ",\"holder_name\":");
          flush(w);
          jstr(w->f, nameof(w, (long)e->arg));
          fputs("}}", w->f);
          break;
        case EV_END: next = -1; break;
      }
      if (next != state || e->kind == EV_STATE) {
        if (state >= 0) span(w, b->tid, state, since, e->t);
        state = next;
        since = e->t;
      }
    }
  }
}


/* The command line, for the reader: /proc/self/cmdline where there is one. */
static void command (FILE *f) {
  char buf[1024];
  size_t n = 0, i;
  FILE *p = fopen("/proc/self/cmdline", "rb");
  if (p != NULL) {
    n = fread(buf, 1, sizeof buf - 1, p);
    fclose(p);
  }
  while (n > 0 && buf[n - 1] == '\0') n--;
  for (i = 0; i < n; i++)
    if (buf[i] == '\0') buf[i] = ' ';
  buf[n] = '\0';
  jstr(f, buf);
}


/* A group's lanes: its process name, then each thread's name and place. */
static void group_names (W *w, const gil_tgroup *gr, int several) {
  gil_tbuf *b;
  char pname[128];
  if (several)
    snprintf(pname, sizeof pname, "gilua (pid %d) %s", (int)getpid(), gr->name);
  else
    snprintf(pname, sizeof pname, "gilua (pid %d)", (int)getpid());
  begin(w, "M", "process_name", 0, -1);
  add(w, ",\"args\":{\"name\":");
  flush(w);
  jstr(w->f, pname);
  fputs("}}", w->f);
  if (several) {                /* (a trace of one is as it always was) */
    begin(w, "M", "process_sort_index", 0, -1);
    add(w, ",\"args\":{\"sort_index\":");
    addint(w, (unsigned long long)gr->id);
    add(w, "}}");
    flush(w);
  }
  for (b = gr->bufs; b; b = b->next) {
    begin(w, "M", "thread_name", b->tid, -1);
    add(w, ",\"args\":{\"name\":");
    flush(w);
    jstr(w->f, b->name);
    fputs("}}", w->f);
    begin(w, "M", "thread_sort_index", b->tid, -1);
    add(w, ",\"args\":{\"sort_index\":");
    addint(w, b->seq);
    add(w, "}}");
    flush(w);
  }
}


/*
** Every group (a GIL: an interpreter) is a "process" of the trace, so that
** viewers show each interpreter's threads together: pid is the process's
** for the first group, plus the group's id for the others. A thread that
** ran in several interpreters has a lane in each.
*/
static void write_json (FILE *f, const gil_tgroup *groups, int n,
                        double t0, double t1) {
  W w;
  gil_tbuf *b;
  unsigned long lost = 0;
  int i;
  w.f = f;
  w.first = 1;
  fputs("{\"traceEvents\":[", f);
  for (i = 0; i < n; i++) {
    w.pid = (int)getpid() + groups[i].id;
    group_names(&w, &groups[i], n > 1);
  }
  for (i = 0; i < n; i++) {
    w.pid = (int)getpid() + groups[i].id;
    w.all = groups[i].bufs;
    for (b = groups[i].bufs; b; b = b->next) {
      thread_events(&w, b);
      lost += b->lost;
    }
  }
  fprintf(f, "\n],\n\"displayTimeUnit\":\"ms\",\n\"otherData\":{"
             "\"producer\":\"%s\",\"clock\":\"CLOCK_MONOTONIC\","
             "\"start_us\":%.3f,\"end_us\":%.3f,"
             "\"switch_interval_ms\":%.3f,\"gil_policy\":\"%s\","
             "\"check_interval\":%d,\"lost_events\":%lu,\"interpreters\":[",
          GILUA_VERSION, t0 * 1e6, t1 * 1e6, groups[0].interval * 1e3,
          groups[0].policy, groups[0].check_interval, lost);
  for (i = 0; i < n; i++) {
    fprintf(f, "%s{\"pid\":%d,\"id\":%d,\"name\":", i ? "," : "",
            (int)getpid() + groups[i].id, groups[i].id);
    jstr(f, groups[i].name);
    fprintf(f, ",\"switch_interval_ms\":%.3f,\"gil_policy\":\"%s\","
               "\"check_interval\":%d}",
            groups[i].interval * 1e3, groups[i].policy, groups[i].check_interval);
  }
  fputs("],\"command\":", f);
  command(f);
  fputs("}}\n", f);
}

/* }====================================================== */


/*
** {======================================================
** The timeline page
** =======================================================
*/

/* The page's text before and after the place of the trace. */
static int template (const char **pre, size_t *npre, const char **post,
                     size_t *npost) {
  const struct gilua_resource *r;
  for (r = gilua_resources; r->path; r++) {
    if (strcmp(r->path, TIMELINE_TEMPLATE) == 0) {
      const char *mark = strstr(r->data, TRACE_MARK);
      if (mark == NULL) break;
      *pre = r->data;
      *npre = (size_t)(mark - r->data);
      *post = mark + strlen(TRACE_MARK);
      *npost = r->len - *npre - strlen(TRACE_MARK);
      return 0;
    }
  }
  errno = ENOENT;
  return -1;
}


/* "</" may not appear inside a <script> element; in JSON it can only be
** inside a string, where "<\/" means the same. */
static void copy_escaped (FILE *f, const char *s, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    putc(s[i], f);
    if (s[i] == '<' && i + 1 < n && s[i + 1] == '/') putc('\\', f);
  }
}


static int ishtml (const char *path) {
  size_t n = strlen(path);
  return (n >= 5 && strcasecmp(path + n - 5, ".html") == 0) ||
         (n >= 4 && strcasecmp(path + n - 4, ".htm") == 0);
}


static int write_trace (FILE *f, int html, const gil_tgroup *groups, int n,
                        double t0, double t1) {
  const char *pre, *post;
  size_t npre, npost;
  if (html) {
    if (template(&pre, &npre, &post, &npost) != 0) return -1;
    fwrite(pre, 1, npre, f);
  }
  write_json(f, groups, n, t0, t1);
  if (html) fwrite(post, 1, npost, f);
  return 0;
}


int gilua_timeline (const char *trace_path, const char *html_path) {
  const char *pre, *post;
  size_t npre, npost, n = 0, size = 1 << 16;
  char *buf;
  FILE *in, *out;
  int err = 0;
  if (template(&pre, &npre, &post, &npost) != 0) return -1;
  if ((in = fopen(trace_path, "rb")) == NULL) return -1;
  if ((buf = malloc(size)) == NULL) {
    fclose(in);
    return -1;
  }
  for (;;) {
    size_t got = fread(buf + n, 1, size - n, in);
    char *nb;
    n += got;
    if (n < size) break;
    if ((nb = realloc(buf, size *= 2)) == NULL) {
      err = errno;
      break;
    }
    buf = nb;
  }
  if (ferror(in) && !err) err = errno ? errno : EIO;
  fclose(in);
  if (!err && (n == 0 || memchr(buf, '{', n) == NULL))
    err = EINVAL;  /* not a trace: the page would only show an error */
  if (!err && (out = fopen(html_path, "w")) == NULL) err = errno;
  if (!err) {
    fwrite(pre, 1, npre, out);
    copy_escaped(out, buf, n);
    fwrite(post, 1, npost, out);
    if (fclose(out) != 0) err = errno;
  }
  free(buf);
  if (err) {
    errno = err;
    return -1;
  }
  return 0;
}

/* }====================================================== */


/*
** {======================================================
** Starting and stopping
** =======================================================
*/

/* The file is created at once, so that a wrong path fails here and not
** after the program ran. */
int gil_trace_start (gil_t *g, const char *path) {
  FILE *f;
  char *p;
  pthread_mutex_lock(&g->out_lock);
  if (g->out_file != NULL) {
    pthread_mutex_unlock(&g->out_lock);
    errno = EBUSY;
    return -1;
  }
  if ((p = strdup(path)) == NULL || (f = fopen(path, "w")) == NULL) {
    int e = errno;
    free(p);
    pthread_mutex_unlock(&g->out_lock);
    errno = e;
    return -1;
  }
  if (gil_trace_begin(g) != 0) {  /* started by other means? not possible */
    fclose(f);
    free(p);
    pthread_mutex_unlock(&g->out_lock);
    errno = EBUSY;
    return -1;
  }
  g->out_file = f;
  g->out_path = p;
  g->out_html = ishtml(path);
  pthread_mutex_unlock(&g->out_lock);
  return 0;
}


int gil_trace_stop (gil_t *g, const char *name, gil_tgroup *more, int nmore) {
  gil_tgroup *groups;
  double t0, t1;
  int rc = 0, e = 0, i;
  FILE *f;
  pthread_mutex_lock(&g->out_lock);
  if ((f = g->out_file) == NULL) {
    pthread_mutex_unlock(&g->out_lock);
    return 1;
  }
  if ((groups = calloc((size_t)nmore + 1, sizeof *groups)) == NULL) {
    pthread_mutex_unlock(&g->out_lock);
    for (i = 0; i < nmore; i++) gil_trace_free(more[i].bufs);
    errno = ENOMEM;
    return -1;
  }
  groups[0].bufs = gil_trace_end(g, &t0, &t1);
  groups[0].id = 0;
  snprintf(groups[0].name, sizeof groups[0].name, "%s", name);
  groups[0].interval = gil_getinterval(g);
  groups[0].policy = g->trace_policy->name;
  groups[0].check_interval = gil_checkinterval(g);
  for (i = 0; i < nmore; i++) groups[i + 1] = more[i];
  if (write_trace(f, g->out_html, groups, nmore + 1, t0, t1) != 0) {
    rc = -1;
    e = errno;
  }
  if (fclose(f) != 0 && rc == 0) {
    rc = -1;
    e = errno;
  }
  for (i = 0; i <= nmore; i++) gil_trace_free(groups[i].bufs);
  free(groups);
  g->out_file = NULL;
  free(g->out_path);
  g->out_path = NULL;
  pthread_mutex_unlock(&g->out_lock);
  errno = e;
  return rc;
}


char *gil_trace_path (gil_t *g) {
  char *p = NULL;
  pthread_mutex_lock(&g->out_lock);
  if (g->out_path != NULL) p = strdup(g->out_path);
  pthread_mutex_unlock(&g->out_lock);
  return p;
}


/* }====================================================== */


/*
** {======================================================
** The summary table (--gil-stats)
** =======================================================
*/

static double pct (double part, double whole) {
  return whole > 0 ? 100.0 * part / whole : 0.0;
}


void gil_printstats (gil_t *g, FILE *out) {
  gilua_stats st;
  gilua_threadstats *ts;
  int n, m;
  gil_getstats(g, &st);
  n = gil_threadstats(g, NULL, 0);
  ts = calloc((size_t)(n > 0 ? n : 1), sizeof *ts);
  if (ts == NULL) return;
  m = gil_threadstats(g, ts, n);  /* threads may have come or gone meanwhile */
  if (m < n) n = m;
  gil_printfigures(out, &st, ts, n, gil_getinterval(g), gil_getpolicy(g),
                   gil_checkinterval(g));
  free(ts);
}


void gil_printfigures (FILE *out, const gilua_stats *st,
                       const gilua_threadstats *ts, int n, double interval,
                       const gil_policy *policy, int check_interval) {
  int i, alive = 0;
  for (i = 0; i < n; i++) alive |= ts[i].alive;
  if (policy == &gil_policy_sched)  /* the draws decide: no interval */
    fprintf(out, "GIL statistics: %.3f s, policy sched (the scheduler's "
            "draws decide every switch)\n", st->elapsed);
  else if (policy->tick)  /* its own clock: instructions */
    fprintf(out, "GIL statistics: %.3f s, policy %s, check interval %d "
            "instructions\n", st->elapsed, policy->name, check_interval);
  else
    fprintf(out, "GIL statistics: %.3f s, policy %s, switch interval %.1f "
            "ms\n", st->elapsed, policy->name, interval * 1e3);
  fprintf(out, "  %lu switches (%.0f/s), %lu forced (%.0f%%), "
               "%lu drop requests\n",
          st->switches, st->elapsed > 0 ? st->switches / st->elapsed : 0.0,
          st->forced_switches,
          pct((double)st->forced_switches, (double)st->switches),
          st->drop_requests);
  fprintf(out, "  %-22s %8s  %-15s  %-15s  %8s  %s\n", "thread", "tid",
          "holding the GIL", "waiting for it", "acquired", "drop requests");
  fprintf(out, "  %-22s %8s  %8s %6s  %8s %6s  %8s  %6s %7s\n", "", "",
          "s", "%", "s", "%", "", "made", "recvd");
  for (i = 0; i < n; i++) {
    char name[40];
    /* while some threads run, say which ones have finished */
    snprintf(name, sizeof name, "%s%s", ts[i].name,
             alive && !ts[i].alive && ts[i].ident != 0 ? " (done)" : "");
    fprintf(out, "  %-22.22s %8ld  %8.3f %5.1f%%  %8.3f %5.1f%%  %8lu  "
                 "%6lu %7lu\n",
            name, ts[i].native_id, ts[i].hold_time,
            pct(ts[i].hold_time, st->elapsed), ts[i].wait_time,
            pct(ts[i].wait_time, st->elapsed), ts[i].acquisitions,
            ts[i].drop_requests_made, ts[i].drop_requests_received);
  }
  fflush(out);
}

/* }====================================================== */
