"""bench/mpi_cpu.py: twin of mpi_cpu.lua, on mpi4py.futures (1 or 2 workers).

Needs mpi4py (Debian: python3-mpi4py); see mpi_executor.py.
"""
import os
import sys
import time

# As gilua's mpi module does for a program run without mpiexec: as many
# workers on this machine as asked for, more than its cores if need be.
os.environ.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
try:
    from mpi4py.futures import MPIPoolExecutor
except ImportError:
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise

N = 60000000


def compter(n):
    c0 = time.process_time()
    count = 0
    for k in range(n):
        count += k
    return count, time.process_time() - c0


if __name__ == "__main__":
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    with open("/proc/loadavg") as f:
        load = float(f.read().split()[0])
    with MPIPoolExecutor(max_workers=workers) as pool:
        list(pool.map(compter, [1, 1]))
        t0 = time.perf_counter()
        r = list(pool.map(compter, [N, N]))
        dt = time.perf_counter() - t0
    print("time=%.6f" % dt)
    print("load=%.2f" % load)
    print("parallelism=%.2f" % ((r[0][1] + r[1][1]) / dt))
    print("check=%d" % (r[0][0] + r[1][0]))
