#!/usr/bin/env python3
"""Alarms from devices to the operators' board, for bench/emergency.sh. Publishes RATE alarms a
second for SECONDS to the broker (QoS 1, topic yiyang/devices/{serial}/events, serials from a
file, round robin) with the time of sending in `at` (milliseconds); each is timed when it arrives
on the board's live stream (`added` over SSE, logged in as the operator): publish → committed →
pushed. The baseline, mode `broker`: the same publishing to a plain subscriber on the broker, with
no server between (what the broker and this client cost by themselves).

Usage: alarms.py server PORT PASSWORD LABEL RATE SECONDS SERIALS_FILE
       alarms.py broker - - LABEL RATE SECONDS SERIALS_FILE
Prints one tab-separated row: label, what, p50, p99, max (ms), received, lost.
"""
import http.client, json, sys, threading, time, uuid
from datetime import datetime, timezone

import paho.mqtt.client as mqtt

mode, port, password, label = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
rate, seconds = int(sys.argv[5]), float(sys.argv[6])
serials = [s.strip() for s in open(sys.argv[7]) if s.strip()]
run = uuid.uuid4().hex[:8]
lat = []  # ms
lock = threading.Lock()


def now_ms():
    return time.time() * 1000.0


def at_ms(text):
    return datetime.fromisoformat(text).timestamp() * 1000.0


def board():
    c = http.client.HTTPConnection("127.0.0.1", int(port))
    c.request("POST", "/api/v1/auth/login", json.dumps({"username": "operator", "password": password}),
              {"content-type": "application/json"})
    r = c.getresponse()
    r.read()
    cookie = [v.split(";")[0] for k, v in r.getheaders() if k.lower() == "set-cookie" and "yiyang_session" in v][0]
    s = http.client.HTTPConnection("127.0.0.1", int(port))
    s.request("GET", "/api/v1/emergency/stream", headers={"cookie": cookie, "accept": "text/event-stream"})
    resp = s.getresponse()
    assert resp.status == 200, resp.status
    ready.set()
    kind = None
    while True:
        line = resp.fp.readline()
        if not line:
            return
        line = line.decode().rstrip("\r\n")
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:") and kind == "added":
            ev = json.loads(line[5:])
            if ev.get("serial") and ev["occurred_at"]:
                t = now_ms() - at_ms(ev["occurred_at"])
                with lock:
                    lat.append(t)


def on_message(_c, _u, msg):
    body = json.loads(msg.payload)
    if body["event_id"].startswith(f"b-{run}-"):
        with lock:
            lat.append(now_ms() - at_ms(body["at"]))


ready = threading.Event()
if mode == "server":
    threading.Thread(target=board, daemon=True).start()
else:
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{run}")
    sub.on_message = on_message
    sub.on_connect = lambda c, *_: (c.subscribe("yiyang/devices/+/events", qos=1), ready.set())
    sub.connect("127.0.0.1", 1883)
    sub.loop_start()
ready.wait(10)
time.sleep(0.5)

pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{run}")
pub.max_inflight_messages_set(1000)
pub.max_queued_messages_set(0)
pub.connect("127.0.0.1", 1883)
pub.loop_start()
total = int(rate * seconds)
t0 = time.time()
for i in range(total):
    due = t0 + i / rate
    d = due - time.time()
    if d > 0:
        time.sleep(d)
    serial = serials[i % len(serials)]
    at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    kind = ("sos", "fall", "smoke", "gas", "door")[i % 5]
    body = json.dumps({"event_id": f"b-{run}-{i}", "type": kind, "at": at})
    pub.publish(f"yiyang/devices/{serial}/events", body, qos=1)
sent_for = time.time() - t0
deadline = time.time() + 15
while time.time() < deadline:
    with lock:
        if len(lat) >= total:
            break
    time.sleep(0.1)
pub.loop_stop()
with lock:
    xs = sorted(lat)
n = len(xs)
if n == 0:
    print(f"{label}\t{mode}\t-\t-\t-\t0\t{total}")
    sys.exit(1)
p = lambda q: xs[min(n - 1, int(q * n))]
what = "board (publish → committed → SSE)" if mode == "server" else "baseline: broker only"
what += f", {rate}/s for {seconds:g} s"
print(f"{label}\t{what}\t{p(0.5):.0f}\t{p(0.99):.0f}\t{xs[-1]:.0f}\t{n}\t{total - n}")
if sent_for > seconds * 1.1:
    print(f"# the publisher kept {total / sent_for:.0f}/s, not {rate}/s", file=sys.stderr)
