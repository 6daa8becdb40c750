# samples/gil/convoy.py: CPython's twin of convoy.lua, to compare.
#
#     python3 samples/gil/convoy.py
#
# The same I/O-bound thread (200 sleeps of 1 ms, measuring how late it gets
# back each time), alone, then beside a CPU-bound thread. CPython's GIL has
# the same protocol as gilua's (wait a switch interval, then ask the holder
# to drop it), so the latency jumps the same way, to about 5 ms.
import statistics
import sys
import threading
import time

REQUESTS, WAIT = 200, 0.001
clock = time.perf_counter


def io_bound(requests, out):
    lat = []
    t0 = clock()
    for _ in range(requests):
        before = clock()
        time.sleep(WAIT)
        lat.append(clock() - before - WAIT)
    out.append((lat, clock() - t0))


def run_io(requests):
    out = []
    th = threading.Thread(name="io", target=io_bound, args=(requests, out))
    th.start()
    th.join()
    return out[0]


lat_alone, total_alone = run_io(REQUESTS)

stop = False


def cpu_bound():
    n = 0
    while not stop:
        n += 1


cpu = threading.Thread(name="cpu", target=cpu_bound)
cpu.start()
lat_cpu, total_cpu = run_io(REQUESTS)
stop = True
cpu.join()

interval = sys.getswitchinterval()
m_alone, m_cpu = statistics.median(lat_alone), statistics.median(lat_cpu)
print("%d blocking calls of %.0f ms in an I/O-bound thread (switch interval %.1f ms)"
      % (REQUESTS, WAIT * 1e3, interval * 1e3))
print("  alone:                   median wake-up latency %6.3f ms, total %.3f s"
      % (m_alone * 1e3, total_alone))
print("  beside a CPU-bound thread: median wake-up latency %6.3f ms, total %.3f s"
      % (m_cpu * 1e3, total_cpu))
print("  = %.2f switch intervals per wake-up" % (m_cpu / interval))
print("alone_median_ms=%.4f\ncpu_median_ms=%.4f\ninterval_ms=%.3f"
      % (m_alone * 1e3, m_cpu * 1e3, interval * 1e3))
