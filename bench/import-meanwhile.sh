#!/usr/bin/env bash
# Nothing stalls the service (issue: hardening, point 3): a ROWS-row registry import (default 1M)
# and then its assessments (about 104k) uploaded to a serving county, then the county's eligibility
# run over everyone (服务找人, a first run for the people just imported), while 64 connections read
# elder details and 4 PATCH elders. Prints p50 / p99 / max of the reads and of the writes during
# the imports beside the same figures just before them (the baseline), the requests over 2 s, and
# the imports' time beside the same imports into the same county with no load.
# Budget: during the imports read p99 <= 200 ms, write p99 <= 500 ms, nothing over 2 s; the
# imports at most a third slower than alone.
# Each job starts from a checkpoint, alone and under load (`settle`), so both begin with the
# database in the same state: PostgreSQL checkpoints every ~540 MB of WAL at its default
# max_wal_size, and where one fell (with the full-page writes after it) differed between the two,
# e.g. at the start of the eligibility run under load but at the end of it alone.
# Usage: bench/import-meanwhile.sh [SCALE] [ROWS] [ENGINES] [RATE]   (SCALE: demo county x 400k
# elders, default 0.5; ENGINES: "sqlite postgres" by default, PostgreSQL at
# postgres://postgres@127.0.0.1:5432; RATE: requests a second per connection, default 6, i.e.
# 384 reads and 24 PATCHes a second: a county's few hundred staff each opening a record every
# second or so, well above what they send at their busiest).
# RATE 0 is a closed loop: each connection sends again the moment it is answered, as many as the
# server takes. Then the server's pacing of requests during a job (`platform::pace`) decides how
# the two cores are shared between the requests and the job, and the client runs on the same two
# cores: reads, writes and the 2 s limit must hold there too, but the job's speed is whatever
# share the pacing leaves it, so the speed budget is read at the paced load.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
SCALE=${1:-0.5}; ROWS=${2:-1000000}; ENGINES=${3:-sqlite postgres}; RATE=${4:-6}
PGBASE=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
cargo build --release --locked -p yiyang -q
BIN=$PWD/target/release/yiyang
W=$PWD/bench/out/meanwhile; rm -rf "$W"; mkdir -p "$W"
export YIYANG_KEY_FILE=$W/yiyang.key YIYANG_AUDIT_CHECKPOINTS=off
echo "files: $ROWS registry rows and their assessments…"
$BIN gen-registry-file "$W/reg.csv" --rows "$ROWS" >/dev/null
$BIN gen-assessment-file "$W/a.csv" --elders "$ROWS" --share 0.42 >/dev/null
PORT=18183
SPID=
trap '[ -n "$SPID" ] && kill $SPID 2>/dev/null || true' EXIT

serve() { # url
  YIYANG_DATABASE_URL=$1 $BIN serve --profile demo --listen 127.0.0.1:$PORT >> "$W/serve.log" 2>&1 &
  SPID=$!
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  local pw; pw=$(awk '$1=="officer"{print $2}' "$W/demo-accounts.txt")
  curl -s -c "$W/cj" -H 'content-type: application/json' \
    -d "{\"username\":\"officer\",\"password\":\"$pw\"}" "http://127.0.0.1:$PORT/api/v1/auth/login" >/dev/null
  COOKIE=$(awk '$6=="yiyang_session"{print "yiyang_session="$7}' "$W/cj")
}
stop() { kill $SPID; wait $SPID 2>/dev/null || true; SPID=; }

upload() { # file kind -> prints "start end" (unix seconds) after the job is done
  local t0 id st
  t0=$(date +%s.%N)
  id=$(curl -s -b "$W/cj" -F dry_run=false -F "file=@$1" "http://127.0.0.1:$PORT/api/v1/imports/$2" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  while :; do
    st=$(curl -s -b "$W/cj" "http://127.0.0.1:$PORT/api/v1/imports/$id")
    case $st in *'"state":"done"'*|*'"state":"failed"'*) break ;; esac
    sleep 0.2
  done
  echo "$st" > "$W/job-$2.json"
  case $st in *'"state":"failed"'*) echo "import $2 failed: $st" >&2; exit 1 ;; esac
  echo "$t0 $(date +%s.%N)"
}

evaluate() { # -> "start end" after the county's eligibility run is written
  local t0 st
  t0=$(date +%s.%N)
  st=$(curl -s -b "$W/cj" -H 'content-type: application/json' -d '{"region_code":"320682000000"}' \
    "http://127.0.0.1:$PORT/api/v1/catalog/evaluate")
  echo "$st" > "$W/evaluation.json"
  case $st in *'"run_id"'*) ;; *) echo "evaluation failed: $st" >&2; exit 1 ;; esac
  echo "$t0 $(date +%s.%N)"
}

RESULTS=$W/results.txt; : > "$RESULTS"
for engine in $ENGINES; do
  echo "== $engine: demo county at scale $SCALE"
  rm -f "$W/demo-accounts.txt"
  if [ "$engine" = sqlite ]; then
    URL=$W/county.db; TPL=$W/template.db
    YIYANG_DATABASE_URL=$TPL $BIN demo --scale "$SCALE" > "$W/demo.log"
    restore() { rm -f "$URL" "$URL-wal" "$URL-shm"; cp "$TPL" "$URL"; }
  else
    psql -q "$PGBASE/postgres" -c "DROP DATABASE IF EXISTS yiyang_mw_tpl" -c "DROP DATABASE IF EXISTS yiyang_mw" >/dev/null
    psql -q "$PGBASE/postgres" -c "CREATE DATABASE yiyang_mw_tpl" >/dev/null
    YIYANG_DATABASE_URL=$PGBASE/yiyang_mw_tpl $BIN demo --scale "$SCALE" > "$W/demo.log"
    URL=$PGBASE/yiyang_mw
    restore() {
      psql -q "$PGBASE/postgres" -c "DROP DATABASE IF EXISTS yiyang_mw" -c "CREATE DATABASE yiyang_mw TEMPLATE yiyang_mw_tpl" >/dev/null
    }
  fi
  # Alone: the same imports into the same county with nobody else.
  restore; settle "$URL"; serve "$URL"
  read -r a0 a1 < <(upload "$W/reg.csv" registry)
  settle "$URL"; read -r b0 b1 < <(upload "$W/a.csv" assessments)
  settle "$URL"; read -r e0 e1 < <(evaluate)
  stop
  # Under load.
  restore; settle "$URL"; serve "$URL"
  curl -s -o /dev/null -b "$W/cj" -H 'content-type: application/json' -d '{}' "http://127.0.0.1:$PORT/api/v1/elders/search"
  for p in 1 2 3 4 5; do
    curl -s -b "$W/cj" -H 'content-type: application/json' \
      -d "{\"page\":$((p*11)),\"page_size\":200,\"sort\":\"name\"}" "http://127.0.0.1:$PORT/api/v1/elders/search"
    echo
  done | python3 -c '
import json,sys
for l in sys.stdin:
    if l.strip():
        for i in json.loads(l)["items"]: print(i["id"])' > "$W/ids.txt"
  rm -f "$W/stop"
  python3 bench/load.py $PORT "$COOKIE" "$W/ids.txt" "$W/requests-$engine.tsv" 64 4 900 "$W/stop" "$RATE" &
  LPID=$!
  sleep 12
  read -r c0 c1 < <(upload "$W/reg.csv" registry)
  settle "$URL"; read -r d0 d1 < <(upload "$W/a.csv" assessments)
  settle "$URL"; read -r f0 f1 < <(evaluate)
  sleep 2; touch "$W/stop"; wait $LPID
  stop
  python3 - "$W/requests-$engine.tsv" "$engine" "$a0" "$a1" "$b0" "$b1" "$c0" "$c1" "$d0" "$d1" "$e0" "$e1" "$f0" "$f1" "$RATE" >> "$RESULTS" <<'PY'
import sys
path, engine = sys.argv[1], sys.argv[2]
a0, a1, b0, b1, c0, c1, d0, d1, e0, e1, f0, f1 = map(float, sys.argv[3:15])
rows = [l.split("\t") for l in open(path)]
rows = [(float(t), float(ms), k, int(s)) for t, ms, k, s in rows]
first = min(r[0] for r in rows)
def pct(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")
def stats(lo, hi, kind):
    v = [ms for t, ms, k, s in rows if lo <= t < hi and k == kind]
    bad = sum(1 for t, ms, k, s in rows if lo <= t < hi and k == kind and s != 200)
    over = sum(1 for x in v if x > 2000)
    rate = len(v) / max(hi - lo, 1e-9)
    return f"{kind:5s} n={len(v):6d} {rate:7.0f}/s p50 {pct(v,.5):7.1f} ms  p99 {pct(v,.99):7.1f} ms  max {max(v) if v else 0:7.1f} ms  >2s {over}  non-200 {bad}"
print(f"== {engine}, load: " + (f"{sys.argv[15]} requests/s per connection" if float(sys.argv[15]) > 0 else "closed loop"))
print(f"baseline ({c0 - first - 2:.0f} s before the imports):")
for k in ("read", "write"): print("  " + stats(first + 2, c0, k))
print(f"during the registry import ({c1 - c0:.1f} s; alone {a1 - a0:.1f} s, ratio {(c1 - c0) / (a1 - a0):.2f}):")
for k in ("read", "write"): print("  " + stats(c0, c1, k))
print(f"during the assessment import ({d1 - d0:.1f} s; alone {b1 - b0:.1f} s, ratio {(d1 - d0) / (b1 - b0):.2f}):")
for k in ("read", "write"): print("  " + stats(d0, d1, k))
print(f"during the eligibility run ({f1 - f0:.1f} s; alone {e1 - e0:.1f} s, ratio {(f1 - f0) / (e1 - e0):.2f}):")
for k in ("read", "write"): print("  " + stats(f0, f1, k))
print("during all three:")
for k in ("read", "write"): print("  " + stats(c0, f1, k))
PY
  tail -n 15 "$RESULTS"
done
echo; cat "$RESULTS"
