"""bench/queue_pingpong.py: twin of queue_pingpong.lua.

100,000 round trips between two threads through two Queues: the main
thread puts a number in `aller` and waits for it on `retour`, where an
echo thread puts it back. Every trip hands the GIL from one thread to
the other, so this measures the wake-up path of a blocked get.
Prints time=<seconds>.
"""
import queue
import threading
import time

NB = 100_000

aller, retour = queue.Queue(), queue.Queue()


def echo_loop():
    while True:
        x = aller.get()
        if x is None:
            break
        retour.put(x)


echo = threading.Thread(target=echo_loop)
echo.start()

t0 = time.perf_counter()
somme = 0
for i in range(1, NB + 1):
    aller.put(i)
    somme += retour.get()
dt = time.perf_counter() - t0
aller.put(None)
echo.join()
print(f"time={dt:.6f}")
print(f"check={somme}")
