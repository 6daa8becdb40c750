"""bench/mp_pipe.py: twin of mp_pipe.lua."""
import multiprocessing
import time

NB = 20000


def echo(b):
    while True:
        x = b.recv()
        if x is None:
            break
        b.send(x)


if __name__ == "__main__":
    a, b = multiprocessing.Pipe()
    p = multiprocessing.Process(target=echo, args=(b,))
    p.start()
    t0 = time.perf_counter()
    somme = 0
    for i in range(1, NB + 1):
        a.send(i)
        somme += a.recv()
    dt = time.perf_counter() - t0
    a.send(None)
    p.join()
    print("time=%.6f" % dt)
    print("round_trips_per_s=%.0f" % (NB / dt))
    print("check=%d" % somme)
