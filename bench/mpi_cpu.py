"""bench/mpi_cpu.py: twin of mpi_cpu.lua, on mpi4py.futures (1 or 2 workers).

Needs mpi4py (Debian: python3-mpi4py): see mpi4py_twin.py.
"""
import sys
import time

from mpi4py_twin import MPIPoolExecutor

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
