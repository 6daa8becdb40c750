"""bench/pool_tasks.py: twin of pool_tasks.lua.

50,000 trivial tasks submitted to a ThreadPoolExecutor(4), then every
result collected: the cost of submit, of the hand-over to a worker and
of the Future, with no work in the task itself.
Prints time=<seconds>.
"""
import time
from concurrent.futures import ThreadPoolExecutor

NB = 50_000


def tache(x):
    return x


t0 = time.perf_counter()
somme = 0
with ThreadPoolExecutor(4) as pool:
    futurs = [pool.submit(tache, i) for i in range(1, NB + 1)]
    for f in futurs:
        somme += f.result()
print(f"time={time.perf_counter() - t0:.6f}")
print(f"check={somme}")
