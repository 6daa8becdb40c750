"""bench/mpi_executor.py: twin of mpi_executor.lua, on mpi4py.futures.

Needs mpi4py (Debian: python3-mpi4py): see mpi4py_twin.py.
"""
import time

from mpi4py_twin import MPIPoolExecutor

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
