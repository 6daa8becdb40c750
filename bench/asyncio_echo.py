# Echo round trips over loopback: 10 clients x 2,000 round trips of a
# short line each, through asyncio streams (server and clients in one loop).
import asyncio
import sys
import time

NCLIENTS, NTRIPS = 10, 2000


async def handle(reader, writer):
    while True:
        line = await reader.readline()
        if not line:
            break
        writer.write(line)
        await writer.drain()
    writer.close()


async def client(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ok = 0
    for _ in range(NTRIPS):
        writer.write(b"ping\n")
        await writer.drain()
        if await reader.readline() == b"ping\n":
            ok += 1
    writer.close()
    return ok


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    t0 = time.perf_counter()
    res = await asyncio.gather(*[client(port) for _ in range(NCLIENTS)])
    dt = time.perf_counter() - t0
    total = sum(res)
    print("time=%.6f" % dt)
    print("check=%d" % total)
    sys.stderr.write("%.0f round trips/s\n" % (total / dt))
    server.close()


asyncio.run(main())
