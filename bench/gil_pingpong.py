"""bench/gil_pingpong.py: twin of gil_pingpong.lua.

Round trips over a multiprocessing.Pipe between two threads, beside a
CPU-bound thread, for 1 s. CPython's GIL is gilua's policy "new"; the
argument (a gilua policy name) is ignored. Prints time=<seconds per round
trip> and rate=<round trips per second>.
"""
import multiprocessing
import threading
import time

SECS = 1.0
clock = time.perf_counter
stop = False


def cpu_bound():
    n = 0
    while not stop:
        n += 1


def echo(conn):
    while True:
        v = conn.recv()
        if v is None:
            break
        conn.send(v)


def main():
    global stop
    cpu = threading.Thread(target=cpu_bound)
    cpu.start()
    a, b = multiprocessing.Pipe()
    th = threading.Thread(target=echo, args=(b,))
    th.start()
    trips = 0
    t0 = clock()
    while clock() - t0 < SECS:
        a.send(trips)
        a.recv()
        trips += 1
    dt = clock() - t0
    a.send(None)
    th.join()
    stop = True
    cpu.join()
    print(f"time={dt / trips:.9f}")
    print(f"rate={trips / dt:.1f}")


main()
