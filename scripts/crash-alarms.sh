#!/usr/bin/env bash
# Reliability test: kill -9 the server while devices publish alarms to the broker. The server
# acknowledges a message to the broker only after its event is committed, under a session the
# broker keeps: what it had not acknowledged when it died, and what came while it was down, is
# delivered again when it is back. Afterwards every alarm published is exactly one event.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${CRASH_ALARMS:-3000}; RATE=${CRASH_RATE:-500}
python3 -c 'import paho.mqtt' 2>/dev/null || pip install -q --disable-pip-version-check 'paho-mqtt==2.1.0'
cargo build --release --locked -p yiyang -q
BIN=$PWD/target/release/yiyang
W=$(mktemp -d)
export YIYANG_DATABASE_URL=$W/yiyang.db YIYANG_KEY_FILE=$W/yiyang.key YIYANG_AUDIT_CHECKPOINTS=off
export YIYANG_MQTT_CLIENT_ID=yiyang-crash-$$
PORT=${CRASH_PORT:-18287}
SPID=
# The broker keeps this run's session after it (messages queued for it): a clean connection
# under the same id ends it.
forget_session() { mosquitto_sub -h 127.0.0.1 -i "$YIYANG_MQTT_CLIENT_ID" -t yiyang/none -W 1 >/dev/null 2>&1 || true; }
trap 'kill -9 $SPID 2>/dev/null || true; forget_session; rm -rf "$W"' EXIT
$BIN demo --scale 0.01 >/dev/null 2>&1
$BIN devices list --format json | python3 -c 'import json,sys; [print(d["serial"]) for d in json.load(sys.stdin)]' > "$W/serials.txt"
serve() {
  $BIN serve --profile demo --listen 127.0.0.1:$PORT >> "$W/serve.log" 2>&1 &
  SPID=$!
  for _ in $(seq 1 100); do grep -q "connected to the MQTT broker" "$W/serve.log" 2>/dev/null && break; sleep 0.1; done
}
serve
# The devices publish N alarms at RATE a second (QoS 1), each its own event id.
python3 - "$W/serials.txt" "$N" "$RATE" "$W/sent.txt" <<'PY' &
import json, sys, time, uuid
from datetime import datetime, timezone
import paho.mqtt.client as mqtt
serials = [s.strip() for s in open(sys.argv[1]) if s.strip()]
n, rate = int(sys.argv[2]), int(sys.argv[3])
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"crash-pub-{uuid.uuid4().hex[:6]}")
c.max_inflight_messages_set(1000)
c.connect("127.0.0.1", 1883)
c.loop_start()
run = uuid.uuid4().hex[:6]
t0 = time.time()
infos = []
for i in range(n):
    d = t0 + i / rate - time.time()
    if d > 0:
        time.sleep(d)
    body = json.dumps({"event_id": f"k-{run}-{i}", "type": "sos",
                       "at": datetime.now(timezone.utc).isoformat(timespec="milliseconds")})
    infos.append(c.publish(f"yiyang/devices/{serials[i % len(serials)]}/events", body, qos=1))
for m in infos:
    m.wait_for_publish(30)
c.loop_stop()
open(sys.argv[4], "w").write(str(sum(1 for m in infos if m.is_published())))
PY
PUB=$!
# Kill it a third of the way through, start it again a second later.
sleep "$(python3 -c "print($N / $RATE / 3)")"
kill -9 $SPID; wait $SPID 2>/dev/null || true
echo "killed the server during the alarms"
sleep 1
serve
wait $PUB
# The broker hands over what waited; the count must settle at N.
for _ in $(seq 1 300); do
  got=$($BIN emergency events --format json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  [ "$got" -ge "$N" ] && break
  sleep 0.1
done
python3 - "$W" "$N" <<EOF
import json, subprocess, sys
w, n = sys.argv[1], int(sys.argv[2])
sent = int(open(f"{w}/sent.txt").read())
assert sent == n, f"the broker took {sent} of {n} publishes"
events = json.loads(subprocess.run(["$BIN", "emergency", "events", "--format", "json"], capture_output=True, check=True).stdout)
assert len(events) == n, f"{len(events)} events for {n} alarms published"
dups = sum(e["duplicate_count"] for e in events)
print(f"ok - kill -9 while {n} alarms came in: {len(events)} events, one each ({dups} delivered again after the restart and counted as repeats)")
EOF
