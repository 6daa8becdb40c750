#!/usr/bin/env python3
"""gilua benchmarks, side by side with their twins in CPython and stock Lua.

    python3 bench/run.py --gilua ./build/gilua            # everything, 5 reps
    python3 bench/run.py --gilua ./build/gilua --only lock_uncontended,loop
    python3 bench/run.py --gilua ./build/gilua --reps 3 --json out.json
    python3 bench/run.py --list

Each workload is a pair of twin files, bench/<file>.lua and bench/<file>.py,
doing the same work. A workload file measures itself and prints one line
`time=<seconds>` on stdout (other `key=value` lines are kept in the JSON; a
`check=<value>` line must be the same for every interpreter, which proves
the twins computed the same thing). Workloads whose point is the process
start-up itself are timed from outside instead (timing="process").

The .lua file is run by gilua and, where listed, unchanged by stock lua5.4;
the .py file by CPython. Repetitions are interleaved: every run of rep 1,
then every run of rep 2, and so on, so that a slow spell of the machine
hits all interpreters alike. The table shows medians and ratios
gilua / twin (below 1: gilua is faster), plus, for workloads with a
threads/sequential pair of modes, that ratio for each interpreter.

Floors. Some workloads also run, in the same run and interleaved with the
rest, what they cannot beat on this machine (a Floor): the same loop with
two trivial C method calls for the lock pair, a bare pthread_create +
pthread_join in C for a thread's start (bench/floor_thread_start.c, built by
`make bench`), stock lua5.4 for the interpreter loop and for start-up. The
table shows each floor and gilua's time divided by it.

Adding a workload: write bench/<name>.lua and bench/<name>.py, add one
Workload(...) line to WORKLOADS below. Python 3 standard library only.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))

# The interpreters. "gilua" runs <file>.lua, "lua5.4" runs the same <file>.lua,
# "python3" runs <file>.py.
RUNNERS = ("gilua", "python3", "lua5.4")
EXT = {"gilua": ".lua", "lua5.4": ".lua", "python3": ".py"}

# Process-timed workloads launch their process this many times per run and
# keep the fastest launch: one launch takes a millisecond or two, less than
# the machine's jitter.
LAUNCHES = 20


class Floor:
    """What a workload cannot beat, run beside it.

    runner -- "gilua" or "lua5.4": that interpreter runs bench/<file>;
              "exe": bench/<file> is a program built by make bench, found
              in the --floors directory
    file   -- the file to run (for a runner, with its extension)
    about  -- one line for the legend under the table
    """

    def __init__(self, runner, file, about):
        self.runner = runner
        self.file = file
        self.about = about


class Workload:
    """One benchmark.

    name     -- what --only selects and the table shows
    file     -- bench/<file>.lua and bench/<file>.py (default: name)
    twins    -- the interpreters it runs on besides gilua
    modes    -- argument lists; each mode is one row (None: no argument)
    ratio    -- (mode_a, mode_b): also show median(a)/median(b) for each
                interpreter, e.g. ("threads", "seq")
    timing   -- "self": the file prints time=<s>; "process": the harness
                times the whole process (when start-up is the point)
    timeout  -- seconds before one run is killed
    about    -- one line for --list and the README
    floor    -- a Floor: what gilua's time is also divided by
    minus    -- another workload's name: also show the difference of the
                two times (what this workload adds to that one)
    """

    def __init__(self, name, about, twins, file=None, modes=(None,),
                 ratio=None, timing="self", timeout=120, floor=None,
                 minus=None):
        self.name = name
        self.about = about
        self.file = file or name
        self.twins = tuple(twins)
        self.modes = tuple(modes)
        self.ratio = ratio
        self.timing = timing
        self.timeout = timeout
        self.floor = floor
        self.minus = minus

    @property
    def runners(self):
        return ("gilua",) + self.twins


# gilua's GIL policies, a mode each for the GIL workloads (CPython's GIL is
# "new" whatever the mode).
GIL_POLICIES = ["new", "old", "io-priority", "fifo"]

WORKLOADS = [
    Workload("loop", "single-thread interpreter loop, the same .lua file "
             "(arithmetic, calls, tables, strings)",
             twins=["lua5.4"],
             floor=Floor("lua5.4", "loop.lua", "stock lua5.4, same file")),
    Workload("cpu_threads", "2 CPU-bound calls: sequential, then in "
             "2 threads", twins=["python3"], modes=["seq", "threads"],
             ratio=("threads", "seq")),
    Workload("sleep_threads", "10 threads each sleeping 0.2 s",
             twins=["python3"]),
    Workload("thread_start", "2,000 x (Thread start + join)",
             twins=["python3"],
             floor=Floor("exe", "floor_thread_start", "2,000 x bare "
                         "pthread_create + pthread_join in C")),
    Workload("lock_uncontended", "1,000,000 uncontended Lock "
             "acquire/release pairs", twins=["python3"],
             floor=Floor("gilua", "floor_method_calls.lua", "1,000,000 x "
                         "two trivial C method calls (s:len()) in gilua")),
    Workload("startup_empty", "start the interpreter on an empty script, "
             "exit (whole process timed)", twins=["python3", "lua5.4"],
             timing="process",
             floor=Floor("lua5.4", "startup_empty.lua", "stock lua5.4 on "
                         "the same empty script")),
    Workload("startup", "start the interpreter, import threading and "
             "time, exit (whole process timed)",
             twins=["python3"], timing="process", minus="startup_empty",
             floor=Floor("lua5.4", "startup_empty.lua", "stock lua5.4 on "
                         "an empty script")),
    Workload("queue_pingpong", "100,000 round trips through two Queues "
             "between 2 threads", twins=["python3"]),
    Workload("queue_throughput", "200,000 items through a Queue, 1 "
             "producer thread and 1 consumer", twins=["python3"]),
    Workload("pool_tasks", "50,000 trivial tasks on ThreadPoolExecutor(4), "
             "submit then result", twins=["python3"]),
    Workload("pool_sleep", "10 tasks of sleep(0.1) on "
             "ThreadPoolExecutor(max_workers=4)", twins=["python3"]),
    Workload("mp_cpu", "2 CPU-bound calls: sequential, in 2 threads, in "
             "2 processes", twins=["python3"],
             modes=["seq", "threads", "processes"],
             ratio=("processes", "seq")),
    Workload("interp_cpu", "2 CPU-bound calls: sequential, in 2 threads, "
             "in 2 interpreters (concurrent.interpreters, a GIL each)",
             twins=[], modes=["seq", "threads", "interpreters"],
             ratio=("interpreters", "seq")),
    Workload("interp_start", "200 x (create an interpreter, call, close) "
             "against 200 x (Process start + join, fork)",
             twins=[], modes=["interpreter", "process"],
             ratio=("interpreter", "process")),
    Workload("mp_pool_map", "multiprocessing.Pool(2).map of a CPU-bound "
             "function over 8 chunks (pool start included)",
             twins=["python3"]),
    Workload("mp_queue", "100,000 items from a child process through a "
             "multiprocessing.Queue", twins=["python3"]),
    Workload("mp_pipe", "20,000 round trips over a Pipe with a child "
             "process", twins=["python3"]),
    Workload("manager_dict", "10,000 x (d[k] = i; d[k]) on a SyncManager's "
             "dict over TCP loopback (server started before the clock)",
             twins=["python3"]),
    Workload("mp_executor", "5,000 trivial tasks on "
             "ProcessPoolExecutor(2), start and shutdown included",
             twins=["python3"]),
    Workload("mpi_executor", "5,000 trivial tasks on mpi.futures."
             "MPIPoolExecutor(2) beside mpi4py.futures (workers spawned, "
             "their start timed apart)", twins=["python3"]),
    Workload("mpi_cpu", "2 CPU-bound calls on an MPIPoolExecutor of 1 "
             "worker, then of 2 (beside mpi4py.futures)", twins=["python3"],
             modes=["1", "2"], ratio=("2", "1")),
    Workload("subprocess_true", "300 x subprocess.run([\"true\"])",
             twins=["python3"]),
    Workload("subprocess_cat", "50 x run([\"cat\"]) with 1 MiB of input, "
             "output captured", twins=["python3"]),
    Workload("asyncio_sleep0", "100,000 asyncio tasks each awaiting "
             "sleep(0) once, gathered", twins=["python3"]),
    Workload("asyncio_sleep_many", "10,000 asyncio tasks each awaiting "
             "sleep(0.1), all at once", twins=["python3"]),
    Workload("asyncio_echo", "10 clients x 2,000 echo round trips over "
             "loopback with asyncio streams", twins=["python3"]),
    Workload("gil_convoy", "median wake-up latency of an I/O-bound thread "
             "(200 x sleep 1 ms) beside a CPU-bound one, per GIL policy "
             "(CPython: new)", twins=["python3"], modes=GIL_POLICIES),
    Workload("gil_pingpong", "time per round trip over a Pipe between 2 "
             "threads beside a CPU-bound one, 1 s, per GIL policy "
             "(CPython: new)", twins=["python3"], modes=GIL_POLICIES),
]


def parse_output(text):
    """key=value lines of a workload's stdout, as a dict of strings."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and " " not in key:
            out[key] = value
    return out


def workload_argv(runner, cmd, workload, mode):
    """The command line of one workload on one interpreter ("floor": the
    workload's floor, with cmd the floor's own command)."""
    if runner == "floor":
        argv = list(cmd)
    else:
        argv = list(cmd) + [os.path.join(BENCH_DIR,
                                         workload.file + EXT[runner])]
    if mode is not None:
        argv.append(mode)
    return argv


def fastest_launch(argv, workload):
    """The fastest of LAUNCHES launches of argv, output thrown away."""
    best = None
    for _ in range(LAUNCHES):
        start = time.perf_counter()
        rc = subprocess.run(argv, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            timeout=workload.timeout, cwd=BENCH_DIR).returncode
        elapsed = time.perf_counter() - start
        if rc != 0:
            raise RuntimeError("exit status %s: %s" % (rc, " ".join(argv)))
        best = elapsed if best is None else min(best, elapsed)
    return best


def run_once(argv, workload):
    """Runs one workload once (argv from workload_argv). Returns (seconds,
    fields) or raises RuntimeError with what went wrong."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True,
                              timeout=workload.timeout, cwd=BENCH_DIR)
    except subprocess.TimeoutExpired:
        raise RuntimeError("timed out after %ss: %s"
                           % (workload.timeout, " ".join(argv)))
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError("exit status %s: %s\n%s"
                           % (proc.returncode, " ".join(argv),
                              (proc.stderr or proc.stdout).strip()[-800:]))
    fields = parse_output(proc.stdout)
    if workload.timing == "process":
        try:
            return min(elapsed, fastest_launch(argv, workload)), fields
        except subprocess.TimeoutExpired:
            raise RuntimeError("timed out after %ss: %s"
                               % (workload.timeout, " ".join(argv)))
    if "time" not in fields:
        raise RuntimeError("no time=<seconds> line in the output of %s:\n%s"
                           % (" ".join(argv), proc.stdout.strip()[-800:]))
    try:
        return float(fields["time"]), fields
    except ValueError:
        raise RuntimeError("bad time value %r from %s"
                           % (fields["time"], " ".join(argv)))


def fmt_time(s):
    if s is None:
        return "-"
    if abs(s) < 0.001:
        return "%.1fus" % (s * 1e6)
    if abs(s) < 1:
        return "%.2fms" % (s * 1e3)
    return "%.3fs" % s


def fmt_ratio(r):
    return "-" if r is None else "%.2f" % r


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def render_table(workloads, results, twins_shown, stat="median"):
    """The results as a text table (list of lines)."""
    floors = any(w.floor for w in workloads)
    head = ["workload", "mode", "gilua"] + list(twins_shown) + \
           (["floor"] if floors else []) + \
           ["gilua/" + t for t in twins_shown] + \
           (["gilua/floor"] if floors else [])
    rows = []
    by_name = {w.name: w for w in workloads}
    for w in workloads:
        for mode in w.modes:
            cell = results[w.name][mode or "-"]
            med = {r: cell[r][stat] if r in cell else None
                   for r in w.runners + ("floor",)}
            row = [w.name, mode or "-", fmt_time(med["gilua"])]
            row += [fmt_time(med.get(t)) if t in w.twins else ""
                    for t in twins_shown]
            if floors:
                row.append(fmt_time(med["floor"]) if w.floor else "")
            row += [fmt_ratio(ratio(med["gilua"], med.get(t)))
                    if t in w.twins else "" for t in twins_shown]
            if floors:
                row.append(fmt_ratio(ratio(med["gilua"], med["floor"]))
                           if w.floor else "")
            rows.append(row)
        if w.minus in by_name and w.minus in results:
            # What this workload adds to the other one, per interpreter.
            row = ["", "- " + w.minus]
            for r in ("gilua",) + tuple(twins_shown):
                a = results[w.name]["-"].get(r, {}).get(stat)
                b = results[w.minus]["-"].get(r, {}).get(stat)
                row.append(fmt_time(a - b) if a is not None and
                           b is not None and r in w.runners else "")
            row += [""] * (len(head) - len(row))
            rows.append(row)
        if w.ratio:
            a, b = w.ratio
            ca, cb = results[w.name][a], results[w.name][b]
            row = ["", "%s/%s" % (a, b)]
            for r in ("gilua",) + tuple(twins_shown):
                if r in w.runners:
                    ma = ca.get(r, {}).get(stat)
                    mb = cb.get(r, {}).get(stat)
                    row.append(fmt_ratio(ratio(ma, mb)) + "x")
                else:
                    row.append("")
            row += [""] * (len(head) - len(row))
            rows.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    def line(cells):
        return "  ".join(str(c).ljust(wd) if i < 2 else str(c).rjust(wd)
                         for i, (c, wd) in enumerate(zip(cells, widths))
                         ).rstrip()
    out = [line(head), line(["-" * wd for wd in widths])]
    out += [line(r) for r in rows]
    return out


def version_of(cmd, flag):
    try:
        p = subprocess.run(list(cmd) + [flag], capture_output=True,
                           text=True, timeout=10)
        return (p.stdout or p.stderr).strip().splitlines()[0]
    except Exception as e:   # noqa: BLE001 -- informational only
        return "unknown (%s)" % e


def main():
    ap = argparse.ArgumentParser(
        description="gilua benchmarks beside CPython and stock lua5.4")
    ap.add_argument("--gilua", default="./build/gilua",
                    help="the gilua command under test (default %(default)s)")
    ap.add_argument("--python", default=sys.executable or "python3",
                    help="the CPython twin (default: this python)")
    ap.add_argument("--lua", default="lua5.4",
                    help="the stock Lua twin (default %(default)s)")
    ap.add_argument("--floors", metavar="DIR",
                    help="where make bench puts the floor programs "
                         "(default: bench/ beside the gilua under test)")
    ap.add_argument("--only", default="",
                    help="comma-separated workload names (default: all)")
    ap.add_argument("--skip", default="",
                    help="comma-separated workload names to leave out")
    ap.add_argument("--reps", type=int, default=5,
                    help="repetitions of every run, interleaved "
                         "(default %(default)s)")
    ap.add_argument("--stat", choices=("median", "min"), default="median",
                    help="what the table shows of the repetitions "
                         "(default %(default)s; min suits a noisy machine)")
    ap.add_argument("--json", metavar="FILE",
                    help="also write every measurement to FILE")
    ap.add_argument("--list", action="store_true",
                    help="list the workloads and exit")
    ap.add_argument("--quiet", action="store_true",
                    help="no progress line on stderr (there is none when "
                         "stderr is not a terminal)")
    args = ap.parse_args()

    if args.list:
        for w in WORKLOADS:
            print("%-18s %-28s %s" % (w.name, "gilua vs " + ",".join(w.twins),
                                      w.about))
            if w.floor:
                print("%-18s %-28s %s" % ("", "floor", w.floor.about))
        return 0

    names = {w.name for w in WORKLOADS}
    only = [n for n in args.only.split(",") if n]
    skip = [n for n in args.skip.split(",") if n]
    unknown = [n for n in only + skip if n not in names]
    if unknown:
        ap.error("unknown workload(s): %s (known: %s)"
                 % (", ".join(unknown), ", ".join(sorted(names))))
    workloads = [w for w in WORKLOADS
                 if (not only or w.name in only) and w.name not in skip]
    if args.reps < 1:
        ap.error("--reps must be at least 1")

    gilua = os.path.abspath(args.gilua) if os.sep in args.gilua \
        else args.gilua
    commands = {"gilua": [gilua], "python3": [args.python],
                "lua5.4": [args.lua]}
    available = {}
    for r, cmd in commands.items():
        exe = cmd[0]
        found = shutil.which(exe) if os.sep not in exe else \
            (exe if os.access(exe, os.X_OK) else None)
        available[r] = found is not None
    if not available["gilua"]:
        print("run.py: gilua not found at %s (build it with make first)"
              % args.gilua, file=sys.stderr)
        return 2
    for r in RUNNERS[1:]:
        if not available[r] and any(r in w.twins for w in workloads):
            print("run.py: %s not found; its columns stay empty" % r,
                  file=sys.stderr)

    # The floors' commands; a floor that is a twin's very run reuses it.
    floor_dir = os.path.abspath(args.floors or os.path.join(
        os.path.dirname(gilua) if os.sep in gilua else "build", "bench"))
    floor_cmd, floor_of_twin = {}, {}
    for w in workloads:
        f = w.floor
        if f is None:
            continue
        if f.runner == "exe":
            exe = os.path.join(floor_dir, f.file)
            if os.access(exe, os.X_OK):
                floor_cmd[w.name] = [exe]
            else:
                print("run.py: floor %s not found (make bench builds it); "
                      "the floor of %s stays empty" % (exe, w.name),
                      file=sys.stderr)
        elif available[f.runner]:
            if f.runner in w.twins and f.file == w.file + EXT[f.runner]:
                floor_of_twin[w.name] = f.runner
            else:
                floor_cmd[w.name] = commands[f.runner] + [
                    os.path.join(BENCH_DIR, f.file)]

    # results[workload][mode][runner] = {"times": [...], "fields": [...]}
    results = {w.name: {(m or "-"): {} for m in w.modes} for w in workloads}
    errors = []
    failed = set()   # (workload, mode, runner) that already failed once
    total = sum(len(w.modes) * (sum(available[r] for r in w.runners) +
                                (w.name in floor_cmd))
                for w in workloads) * args.reps
    done = 0
    progress = not args.quiet and sys.stderr.isatty()
    for rep in range(args.reps):
        for w in workloads:
            for mode in w.modes:
                # Alternate which interpreter goes first from rep to rep.
                runners = [r for r in w.runners if available[r]]
                if w.name in floor_cmd:
                    runners.append("floor")
                if rep % 2:
                    runners.reverse()
                for r in runners:
                    done += 1
                    key = (w.name, mode or "-", r)
                    if key in failed:
                        continue
                    if progress:
                        print("\r[%d/%d] rep %d  %-18s %-8s %-8s"
                              % (done, total, rep + 1, w.name, mode or "-",
                                 r), end="", file=sys.stderr, flush=True)
                    cmd = floor_cmd[w.name] if r == "floor" else commands[r]
                    try:
                        secs, fields = run_once(
                            workload_argv(r, cmd, w, mode), w)
                    except RuntimeError as e:
                        failed.add(key)
                        errors.append("%s %s %s: %s" % (key + (e,)))
                        continue
                    cell = results[w.name][mode or "-"].setdefault(
                        r, {"times": [], "fields": []})
                    cell["times"].append(secs)
                    cell["fields"].append(fields)
    if progress:
        print("\r" + " " * 70 + "\r", end="", file=sys.stderr)

    # Medians, and the check= agreement between twins.
    warnings = []
    for w in workloads:
        for mode, cells in results[w.name].items():
            for r, cell in list(cells.items()):
                if (w.name, mode, r) in failed:
                    del cells[r]
                    continue
                cell["median"] = statistics.median(cell["times"])
                cell["min"] = min(cell["times"])
                cell["max"] = max(cell["times"])
            if w.name in floor_of_twin and floor_of_twin[w.name] in cells:
                cells["floor"] = cells[floor_of_twin[w.name]]
            checks = {r: {f.get("check") for f in c["fields"]}
                      for r, c in cells.items() if r != "floor"}
            seen = set().union(*checks.values()) if checks else set()
            if len(seen) > 1:
                warnings.append("%s %s: twins disagree on check= %s"
                                % (w.name, mode, checks))

    twins_shown = [t for t in RUNNERS[1:]
                   if any(t in w.twins for w in workloads)]
    print("gilua benchmarks: %s of %d interleaved run%s; ratio < 1 means "
          "gilua is faster" % (args.stat, args.reps,
                               "" if args.reps == 1 else "s"))
    print("gilua: %s | python3: %s | lua5.4: %s | %d CPUs"
          % (version_of(commands["gilua"], "-v"),
             version_of(commands["python3"], "--version")
             if available["python3"] else "missing",
             version_of(commands["lua5.4"], "-v").split("  ")[0]
             if available["lua5.4"] else "missing",
             os.cpu_count() or 0))
    print()
    for line in render_table(workloads, results, twins_shown, args.stat):
        print(line)
    legend = [w for w in workloads if w.floor]
    if legend:
        print()
        print("floors (what gilua/floor divides by):")
        for w in legend:
            print("  %-18s %s" % (w.name, w.floor.about))
    for w in warnings:
        print("warning: " + w)
    if errors:
        print()
        for e in errors:
            print("FAILED: " + e)

    if args.json:
        doc = {
            "reps": args.reps,
            "stat": args.stat,
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"platform": platform.platform(),
                        "cpus": os.cpu_count()},
            "interpreters": {r: commands[r][0] for r in RUNNERS
                             if available[r]},
            "workloads": [
                {"name": w.name, "about": w.about, "timing": w.timing,
                 "ratio": list(w.ratio) if w.ratio else None,
                 "floor": w.floor.about if w.floor else None,
                 "results": results[w.name]}
                for w in workloads],
            "errors": errors,
            "warnings": warnings,
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
