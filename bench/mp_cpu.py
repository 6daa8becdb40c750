"""bench/mp_cpu.py: twin of mp_cpu.lua (seq, threads or processes)."""
import multiprocessing
import sys
import threading
import time

N = 60000000


def compter(n, resultats, i):
    count = 0
    for k in range(n):
        count += k
    resultats[i] = count


def in_process(shared, i):
    r = [0]
    compter(N, r, 0)
    shared[i] = r[0]


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "processes"
    resultats = [0, 0]
    t0 = time.perf_counter()
    if mode == "seq":
        compter(N, resultats, 0)
        compter(N, resultats, 1)
    elif mode == "threads":
        ts = [threading.Thread(target=compter, args=(N, resultats, i)) for i in range(2)]
        for t in ts: t.start()
        for t in ts: t.join()
    elif mode == "processes":
        shared = multiprocessing.Array("q", 2)
        ps = [multiprocessing.Process(target=in_process, args=(shared, i)) for i in range(2)]
        for p in ps: p.start()
        for p in ps: p.join()
        resultats = [shared[0], shared[1]]
    else:
        raise SystemExit("mode must be seq, threads or processes")
    print("time=%.6f" % (time.perf_counter() - t0))
    print("check=%d" % (resultats[0] + resultats[1]))
