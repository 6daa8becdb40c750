"""bench/queue_throughput.py: twin of queue_throughput.lua.

One producer thread puts 200,000 numbers then None (the end signal) in an
unbounded Queue; the main thread gets them all. Measures put/get
themselves more than the hand-overs (the producer runs ahead, and the
GIL changes hands every switch interval or when the consumer waits).
Prints time=<seconds>.
"""
import queue
import threading
import time

NB = 200_000

q = queue.Queue()
t0 = time.perf_counter()


def produire():
    for i in range(1, NB + 1):
        q.put(i)
    q.put(None)


producteur = threading.Thread(target=produire)
producteur.start()
n = somme = 0
while True:
    x = q.get()
    if x is None:
        break
    n += 1
    somme += x
producteur.join()
print(f"time={time.perf_counter() - t0:.6f}")
print(f"check={n}:{somme}")
