"""bench/mp_executor.py: twin of mp_executor.lua."""
import time
from concurrent.futures import ProcessPoolExecutor

NB = 5000


def double(x):
    return 2 * x


if __name__ == "__main__":
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2) as pool:
        fs = [pool.submit(double, i) for i in range(1, NB + 1)]
        somme = sum(f.result() for f in fs)
    dt = time.perf_counter() - t0
    print("time=%.6f" % dt)
    print("tasks_per_s=%.0f" % (NB / dt))
    print("check=%d" % somme)
