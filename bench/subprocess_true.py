"""bench/subprocess_true.py: twin of subprocess_true.lua.

300 x subprocess.run(["true"]): the whole life of a child (PATH lookup,
fork/exec, waiting, collecting it), nothing to read.
Prints time=<seconds>.
"""
import subprocess
import time

N = 300

t0 = time.perf_counter()
failed = 0
for _ in range(N):
    if subprocess.run(["true"]).returncode != 0:
        failed += 1
print(f"time={time.perf_counter() - t0:.6f}")
print(f"check={N - failed}")
