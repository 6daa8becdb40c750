"""bench/mp_queue.py: twin of mp_queue.lua."""
import multiprocessing
import time

NB = 100000


def producteur(q):
    for i in range(1, NB + 1):
        q.put(i)
    q.put(None)


if __name__ == "__main__":
    q = multiprocessing.Queue()
    t0 = time.perf_counter()
    p = multiprocessing.Process(target=producteur, args=(q,))
    p.start()
    n = somme = 0
    while True:
        x = q.get()
        if x is None:
            break
        n += 1
        somme += x
    p.join()
    dt = time.perf_counter() - t0
    print("time=%.6f" % dt)
    print("items_per_s=%.0f" % (NB / dt))
    print("check=%d:%d" % (n, somme))
