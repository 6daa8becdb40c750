# 100,000 tasks, each awaiting sleep(0) once, gathered.
import asyncio
import time

N = 100000


async def work(i):
    await asyncio.sleep(0)
    return i


async def main():
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(work(i)) for i in range(1, N + 1)]
    res = await asyncio.gather(*tasks)
    dt = time.perf_counter() - t0
    print("time=%.6f" % dt)
    print("check=%d" % sum(res))


asyncio.run(main())
