# 10,000 tasks, all sleeping 0.1 s at once.
import asyncio
import time

N = 10000


async def work():
    await asyncio.sleep(0.1)
    return 1


async def main():
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(work()) for _ in range(N)]
    res = await asyncio.gather(*tasks)
    dt = time.perf_counter() - t0
    print("time=%.6f" % dt)
    print("check=%d" % sum(res))


asyncio.run(main())
