"""bench/thread_start.py: twin of thread_start.lua.

2,000 times: make a Thread running an empty function, start it, join it.
Measures the cost of a thread's whole life (OS thread, interpreter thread
state, start handshake, join). Prints time=<seconds>.
"""
import threading
import time

NB = 2000


def rien():
    pass


t0 = time.perf_counter()
for _ in range(NB):
    t = threading.Thread(target=rien)
    t.start()
    t.join()
print(f"time={time.perf_counter() - t0:.6f}")
print(f"check={NB}")
