#!/usr/bin/env python3
"""N caregivers checking in and out at once, for bench/home-visits.sh. Each caregiver (accounts
cg0001.. from `yiyang gen-caregivers`) logs in on her own keep-alive connection and finds her
visit; then all N start together and each sends accept, check in, check out one after another.
The baseline is the same N connections asking /healthz three times at once, through this same
client, just before. asyncio on one thread, so the client adds little to the figures (a thread
per caregiver added ~200 ms of its own on two cores).

Usage: visits.py PORT N LABEL PASSWORD   (prints two tab-separated rows)
"""
import asyncio, json, sys, time, uuid

port, n, label, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]


async def call(conn, method, path, cookie=None, body=None):
    r, w = conn
    data = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n"
    if cookie:
        head += f"Cookie: {cookie}\r\n"
    if body is not None:
        head += "Content-Type: application/json\r\n"
    w.write(head.encode() + b"\r\n" + data)
    await w.drain()
    raw = await r.readuntil(b"\r\n\r\n")
    status = int(raw.split(b" ", 2)[1])
    length, cookies = 0, []
    for line in raw.split(b"\r\n"):
        low = line.lower()
        if low.startswith(b"content-length:"):
            length = int(line.split(b":")[1])
        elif low.startswith(b"set-cookie:") and b"yiyang_session" in line:
            cookies.append(line.split(b":", 1)[1].strip().split(b";")[0].decode())
    payload = await r.readexactly(length) if length else b""
    return status, payload, cookies


async def login(i):
    conn = await asyncio.open_connection("127.0.0.1", port)
    body = {"username": f"cg{i + 1:04}", "password": password}
    status, _, cookies = await call(conn, "POST", "/api/v1/auth/login", body=body)
    assert status == 200 and cookies, f"login cg{i + 1:04}: {status}"
    status, payload, _ = await call(conn, "GET", "/api/v1/service-orders", cookies[0])
    return conn, cookies[0], json.loads(payload)[0]["id"]


async def burst(clients, work):
    lat, errors = [], []
    start = asyncio.Event()

    async def one(c):
        conn, cookie, oid = c
        await start.wait()
        for method, path, body in work(oid):
            t = time.perf_counter()
            status, payload, _ = await call(conn, method, path, cookie, body)
            lat.append((time.perf_counter() - t) * 1000)
            if status >= 300:
                errors.append(f"{status} {payload[:120]!r}")

    tasks = [asyncio.create_task(one(c)) for c in clients]
    await asyncio.sleep(0.05)
    start.set()
    await asyncio.gather(*tasks)
    lat.sort()
    return lat, errors


def steps(oid):
    for action in ("accept", "check_in", "check_out"):
        body = {"step_id": str(uuid.uuid4()), "action": action, "lon": 120.57, "lat": 32.39}
        yield "POST", f"/api/v1/service-orders/{oid}/steps", body


async def main():
    sem = asyncio.Semaphore(20)  # logins hash passwords: not part of the burst

    async def gated(i):
        async with sem:
            return await login(i)

    clients = await asyncio.gather(*[gated(i) for i in range(n)])
    base, _ = await burst(clients, lambda oid: [("GET", "/healthz", None)] * 3)
    lat, errors = await burst(clients, steps)
    p = lambda v, q: v[min(len(v) - 1, int(len(v) * q))]
    print(f"{label}\t/healthz x3 each, {n} at once (baseline)\t{p(base, .5):.1f}\t{p(base, .99):.1f}\t{base[-1]:.1f}\t{len(base)}\t0")
    print(f"{label}\taccept, check in, check out, {n} at once\t{p(lat, .5):.1f}\t{p(lat, .99):.1f}\t{lat[-1]:.1f}\t{len(lat)}\t{len(errors)}")
    if errors:
        print("errors:", errors[:3], file=sys.stderr)


asyncio.run(main())
