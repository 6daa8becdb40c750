"""bench/subprocess_cat.py: twin of subprocess_cat.lua.

50 x run(["cat"], input=1 MiB, capture_output=True): 1 MiB into the
child and 1 MiB back through communicate's multiplexed pipes.
Prints time=<seconds>.
"""
import subprocess
import time

N = 50
data = b"0123456789abcdef" * 65536   # 1 MiB

t0 = time.perf_counter()
same = 0
for _ in range(N):
    r = subprocess.run(["cat"], input=data, capture_output=True)
    if r.stdout == data:
        same += 1
print(f"time={time.perf_counter() - t0:.6f}")
print(f"check={same}")
