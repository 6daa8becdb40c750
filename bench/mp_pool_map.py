"""bench/mp_pool_map.py: twin of mp_pool_map.lua."""
import multiprocessing
import time


def somme(x):
    s = 0
    for k in range(2000000 + x):
        s += k
    return s


if __name__ == "__main__":
    t0 = time.perf_counter()
    with multiprocessing.Pool(2) as pool:
        total = sum(pool.map(somme, [1, 2, 3, 4, 5, 6, 7, 8], 1))
    print("time=%.6f" % (time.perf_counter() - t0))
    print("check=%d" % total)
