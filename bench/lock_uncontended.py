"""bench/lock_uncontended.py: twin of lock_uncontended.lua.

1,000,000 acquire/release pairs on a threading.Lock that no other thread
wants: the cost of the lock's fast path plus two method calls.
Prints time=<seconds>.
"""
import threading
import time

NB = 1_000_000

verrou = threading.Lock()
t0 = time.perf_counter()
for _ in range(NB):
    verrou.acquire()
    verrou.release()
print(f"time={time.perf_counter() - t0:.6f}")
print(f"check={int(verrou.locked())}")
