"""bench/mpi_executor.py: twin of mpi_executor.lua, on mpi4py.futures.

Needs mpi4py (Debian: python3-mpi4py). When the Python running this has
no mpi4py, the system's /usr/bin/python3 (where Debian installs it) runs
the file instead.
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

NB = 5000


def double(x):
    return 2 * x


if __name__ == "__main__":
    t0 = time.perf_counter()
    with MPIPoolExecutor(max_workers=2) as pool:
        pool.submit(double, 0).result()
        t1 = time.perf_counter()
        fs = [pool.submit(double, i) for i in range(1, NB + 1)]
        somme = sum(f.result() for f in fs)
        dt = time.perf_counter() - t1
    print("time=%.6f" % dt)
    print("tasks_per_s=%.0f" % (NB / dt))
    print("startup_s=%.3f" % (t1 - t0))
    print("check=%d" % somme)
