"""bench/pool_sleep.py: twin of pool_sleep.lua.

The course's example: 10 tasks of sleep(0.1) on ThreadPoolExecutor
(max_workers=4). Sleeping releases the GIL, so the 4 workers overlap:
3 rounds, about 0.3 s instead of 1 s.
Prints time=<seconds>.
"""
import time
from concurrent.futures import ThreadPoolExecutor


def tache(n):
    time.sleep(0.1)
    return n ** 2


t0 = time.perf_counter()
with ThreadPoolExecutor(max_workers=4) as pool:
    futurs = [pool.submit(tache, i) for i in range(10)]
    somme = sum(f.result() for f in futurs)
print(f"time={time.perf_counter() - t0:.6f}")
print(f"check={somme}")
