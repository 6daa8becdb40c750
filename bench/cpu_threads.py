"""bench/cpu_threads.py: twin of cpu_threads.lua.

Two calls of a CPU-bound function (the course's `count += i` loop), either
one after the other (argument "seq") or in two threads started together
(argument "threads"). Under a GIL the threads take about as long as the
sequence: they take turns, they do not run in parallel.
Prints time=<seconds> and check=<sum of the two results>.
"""
import sys
import threading
import time

N = 10_000_000


def compter(n, resultats, i):
    count = 0
    for k in range(n):
        count += k
    resultats[i] = count


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "threads"
    resultats = [None, None]
    t0 = time.perf_counter()
    if mode == "seq":
        compter(N, resultats, 0)
        compter(N, resultats, 1)
    elif mode == "threads":
        threads = [threading.Thread(target=compter, args=(N, resultats, i))
                   for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        sys.exit("mode must be seq or threads")
    dt = time.perf_counter() - t0
    print(f"time={dt:.6f}")
    print(f"check={resultats[0] + resultats[1]}")


main()
