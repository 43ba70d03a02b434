#!/usr/bin/env bash
# Alarms to the 12349 board (紧急呼叫: publish → committed → pushed to a connected board, p99 ≤ 200 ms
# at 1,000 events a second from 10,000 devices, alone and while a 1M-row registry import runs).
# The demo county at SCALE with DEVICES devices (`gen-devices`); the server takes the broker's
# messages (Mosquitto at 127.0.0.1:1883) and the operator's board listens on its live stream
# (bench/alarms.py). The baseline, first: the same publishing to a plain subscriber on the broker.
# Usage: bench/emergency.sh [RATE] [SECONDS] [ENGINES] [DEVICES]   (defaults 1000, 20, "sqlite postgres", 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-1000}; SECS=${2:-20}; ENGINES=${3:-sqlite postgres}; DEVICES=${4:-10000}
SCALE=${BENCH_SCALE:-0.05}; IMPORT_ROWS=${BENCH_IMPORT_ROWS:-1000000}
PGBASE=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
python3 -c 'import paho.mqtt' 2>/dev/null || pip install -q --disable-pip-version-check 'paho-mqtt==2.1.0'
cargo build --release --locked -p yiyang -q
BIN=$PWD/target/release/yiyang
W=$PWD/bench/out/emergency; rm -rf "$W"; mkdir -p "$W"
export YIYANG_KEY_FILE=$W/yiyang.key YIYANG_AUDIT_CHECKPOINTS=off
PORT=18286
[ -f "$W/import.csv" ] || $BIN gen-registry-file "$W/import.csv" --rows "$IMPORT_ROWS" --seed 5 >/dev/null

run_engine() { # db-url label
  local DBURL=$1 L=$2
  export YIYANG_DATABASE_URL=$DBURL
  $BIN demo --scale "$SCALE" > "$W/$L-demo.log" 2>&1
  $BIN gen-devices --count "$DEVICES" > "$W/$L-gen.txt"
  $BIN devices list --format json | python3 -c 'import json,sys; [print(d["serial"]) for d in json.load(sys.stdin) if d["serial"].startswith("BN")]' > "$W/serials.txt"
  local PW; PW=$(awk '$1=="operator"{print $2}' "$(dirname "$YIYANG_KEY_FILE")/demo-accounts.txt" | tail -1)
  YIYANG_MQTT_CLIENT_ID=yiyang-bench-$$ $BIN serve --profile demo --listen 127.0.0.1:$PORT > "$W/$L-serve.log" 2>&1 &
  local SPID=$!
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  for _ in $(seq 1 600); do grep -q "search index built" "$W/$L-serve.log" && break; sleep 0.1; done
  for _ in $(seq 1 100); do grep -q "connected to the MQTT broker" "$W/$L-serve.log" && break; sleep 0.1; done
  python3 bench/alarms.py broker - - "$L" "$RATE" "$SECS" "$W/serials.txt" >> "$W/results.tsv"
  python3 bench/alarms.py server "$PORT" "$PW" "$L" "$RATE" "$SECS" "$W/serials.txt" >> "$W/results.tsv"
  # Again while a town's 1M-row registry file is uploaded to the same server (as an officer does
  # in the console: the import runs in the server, its chunks in line with the other writers).
  local OPW; OPW=$(awk '$1=="officer"{print $2}' "$(dirname "$YIYANG_KEY_FILE")/demo-accounts.txt" | tail -1)
  curl -s -c "$W/cj" -H 'content-type: application/json' \
    -d "{\"username\":\"officer\",\"password\":\"$OPW\"}" "http://127.0.0.1:$PORT/api/v1/auth/login" >/dev/null
  local JOB; JOB=$(curl -s -b "$W/cj" -F dry_run=false -F "file=@$W/import.csv" "http://127.0.0.1:$PORT/api/v1/imports/registry" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  # Once it is under way.
  for _ in $(seq 1 600); do
    curl -s -b "$W/cj" "http://127.0.0.1:$PORT/api/v1/imports/$JOB" | grep -q '"processed":[1-9]' && break
    sleep 0.2
  done
  python3 bench/alarms.py server "$PORT" "$PW" "$L" "$RATE" "$SECS" "$W/serials.txt" \
    | sed 's/\tboard (/\tduring import: board (/' >> "$W/results.tsv"
  if curl -s -b "$W/cj" "http://127.0.0.1:$PORT/api/v1/imports/$JOB" | grep -q '"state":"running"'; then
    echo "# $L: the import was still running when the alarms ended" >> "$W/notes.txt"
  else
    echo "# $L: the import ended before the alarms did" >> "$W/notes.txt"
  fi
  for _ in $(seq 1 1200); do
    curl -s -b "$W/cj" "http://127.0.0.1:$PORT/api/v1/imports/$JOB" | grep -q '"state":"running"' || break
    sleep 0.5
  done
  kill $SPID; wait $SPID 2>/dev/null || true
  # The broker keeps the server's session after it: a clean connection under the same id ends it.
  mosquitto_sub -h 127.0.0.1 -i yiyang-bench-$$ -t yiyang/none -W 1 >/dev/null 2>&1 || true
}

case $ENGINES in *sqlite*) run_engine "$W/y.db" sqlite ;; esac
if [[ $ENGINES == *postgres* ]] && pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  psql "$PGBASE/postgres" -q -c "DROP DATABASE IF EXISTS yiyang_bench_alarms" -c "CREATE DATABASE yiyang_bench_alarms" >/dev/null
  rm -f "$W/demo-accounts.txt"
  run_engine "$PGBASE/yiyang_bench_alarms" postgres
fi
echo
printf '%-9s %-62s %8s %8s %8s %8s %6s\n' engine what 'p50 ms' 'p99 ms' 'max ms' received lost
while IFS=$'\t' read -r e w a b c d f; do printf '%-9s %-62s %8s %8s %8s %8s %6s\n' "$e" "$w" "$a" "$b" "$c" "$d" "$f"; done < "$W/results.tsv"
cat "$W/notes.txt" 2>/dev/null || true
echo; echo "budget: publish → board p99 <= 200 ms at 1,000 alarms a second from 10,000 devices, also during the import"
