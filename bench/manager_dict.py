"""bench/manager_dict.py: twin of manager_dict.lua."""
import time
from multiprocessing.managers import SyncManager

NB = 10000

if __name__ == "__main__":
    with SyncManager(address=("127.0.0.1", 0), authkey=b"bench") as m:
        d = m.dict()
        t0 = time.perf_counter()
        somme = 0
        for i in range(1, NB + 1):
            k = "k%d" % (i % 100)
            d[k] = i
            somme += d[k]
        dt = time.perf_counter() - t0
        print("time=%.6f" % dt)
        print("ops_per_s=%.0f" % (2 * NB / dt))
        print("check=%d:%d" % (len(d), somme))
