"""bench/gil_convoy.py: twin of gil_convoy.lua.

The convoy effect: an I/O-bound thread does 200 sleeps of 1 ms beside a
CPU-bound thread and measures how late it gets back to running each time.
CPython's GIL is gilua's policy "new"; the argument (a gilua policy name)
is ignored. Prints time=<median wake-up latency>, p99=<99th percentile>
and check=<wake-ups>.
"""
import math
import threading
import time

REQUESTS, WAIT = 200, 0.001
clock = time.perf_counter
stop = False


def cpu_bound():
    n = 0
    while not stop:
        n += 1


def io_bound(lat):
    for _ in range(REQUESTS):
        before = clock()
        time.sleep(WAIT)
        lat.append(clock() - before - WAIT)


def main():
    global stop
    cpu = threading.Thread(target=cpu_bound)
    cpu.start()
    lat = []
    io = threading.Thread(target=io_bound, args=(lat,))
    io.start()
    io.join()
    stop = True
    cpu.join()
    lat.sort()
    print(f"time={lat[REQUESTS // 2 - 1]:.6f}")
    print(f"p99={lat[math.ceil(REQUESTS * 0.99) - 1]:.6f}")
    print(f"check={len(lat)}")


main()
