#!/usr/bin/env python3
"""HTTP load on loopback: READERS connections GET elder details, WRITERS connections PATCH elders
(an address that alternates, so every PATCH changes something), each on its own keep-alive
connection, until STOP_FILE exists or SECONDS pass (bounded either way). Closed loop (each
connection sends its next request when the last is answered), or with RATE > 0 paced: each
connection starts a request every 1/RATE s (at once when behind, without catching up).
Every request is written to OUT as: start (unix s), latency (ms), kind (read/write), status.

Usage: load.py PORT COOKIE IDS_FILE OUT READERS WRITERS SECONDS STOP_FILE [RATE]
"""
import asyncio, json, os, sys, time

port, cookie, ids_file, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
readers, writers, seconds, stop_file = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7]), sys.argv[8]
rate = float(sys.argv[9]) if len(sys.argv) > 9 else 0.0
ids = [l.strip() for l in open(ids_file) if l.strip()]
records = []
deadline = time.time() + seconds


def done():
    return time.time() > deadline or os.path.exists(stop_file)


async def read_response(r):
    head = await r.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    if length:
        await r.readexactly(length)
    return status


async def client(kind, k):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    n = k
    # Paced connections start spread over one interval, not all at once.
    slot = time.time() + (k % 97) / 97 / rate if rate > 0 else 0.0
    while not done():
        if rate > 0:
            wait = slot - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            slot = max(slot + 1 / rate, time.time())
        n += 1
        i = ids[(n * 7919) % len(ids)]
        if kind == "read":
            req = f"GET /api/v1/elders/{i} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode()
        else:
            body = json.dumps({"address": f"如城街道幸福路 {n % 2 + 1} 号"}, ensure_ascii=False).encode()
            req = (f"PATCH /api/v1/elders/{i} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        t = time.time()
        try:
            w.write(req)
            await w.drain()
            status = await asyncio.wait_for(read_response(r), timeout=30)
        except Exception:
            status = 0
            w.close()
            r, w = await asyncio.open_connection("127.0.0.1", port)
        records.append((t, (time.time() - t) * 1000, kind, status))
    w.close()


async def main():
    await asyncio.gather(*[client("read", k) for k in range(readers)],
                         *[client("write", 1000 + k) for k in range(writers)])


asyncio.run(main())
with open(out, "w") as f:
    for rec in records:
        f.write("%.4f\t%.2f\t%s\t%d\n" % rec)
