"""A flood of dripped request bodies against a running `recur serve`, and
what it leaves other clients: a new connection every INTERVAL seconds
sends the head of a 10,000-byte POST and then one byte every half second,
while a client posts one short `/chat` request every quarter second; the
client's answers are counted by status.

Usage: python3 .ci/body_flood.py URL [--interval 0.05] [--seconds 15]

Run the server with a small `limits.max_connections` (8) to see the
flood take every slot. Standard library only."""

import argparse
import asyncio
import time
import urllib.parse

BODY = b'{"messages":["hello there"]}'


async def client(host: str, port: int, counts: dict) -> None:
    req = (
        b"POST /chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY)
    ) + BODY
    try:
        r, w = await asyncio.open_connection(host, port)
        w.write(req)
        await w.drain()
        got = await asyncio.wait_for(r.read(), 10)
        status = got.split(b"\r\n", 1)[0].decode() if got else "closed without an answer"
        w.close()
    except Exception as e:  # a reset or a timeout is an answer too
        status = f"error {type(e).__name__}"
    counts[status] = counts.get(status, 0) + 1


async def dripper(host: str, port: int) -> None:
    try:
        _, w = await asyncio.open_connection(host, port)
        w.write(
            b"POST /chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000\r\n\r\n{\"m"
        )
        await w.drain()
        for _ in range(40):
            await asyncio.sleep(0.5)
            w.write(b"a")
            await w.drain()
    except Exception:
        pass


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("--seconds", type=float, default=15)
    a = ap.parse_args()
    u = urllib.parse.urlparse(a.url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    counts: dict = {}
    drips = []
    t0 = time.time()

    async def flood():
        while time.time() - t0 < a.seconds:
            drips.append(asyncio.ensure_future(dripper(host, port)))
            await asyncio.sleep(a.interval)

    async def clients():
        await asyncio.sleep(3)  # the flood holds every slot by then
        while time.time() - t0 < a.seconds:
            await client(host, port, counts)
            await asyncio.sleep(0.25)

    await asyncio.gather(flood(), clients())
    for d in drips:
        d.cancel()
    print(f"other clients' answers during the flood: {counts}")


asyncio.run(main())
