"""bench/sleep_threads.py: twin of sleep_threads.lua.

10 threads each sleep 0.2 s; a sleeping thread releases the GIL, so they
overlap and the whole takes about 0.2 s, not 2 s.
Prints time=<seconds>.
"""
import threading
import time

NB, DUREE = 10, 0.2

t0 = time.perf_counter()
threads = [threading.Thread(target=time.sleep, args=(DUREE,))
           for _ in range(NB)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(f"time={time.perf_counter() - t0:.6f}")
print(f"check={NB}")
