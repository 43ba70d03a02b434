#!/usr/bin/env bash
# Indicator dashboards at province scale (issue 5: p95 <= 100 ms from rollups on a 1M-elder,
# province-sized dataset; rollups refreshed incrementally, lag <= 1 min). A synthetic province
# (12 cities, 72 counties, 12,960 villages) plus the demo county, ELDERS people across it, their
# assessments and province targets. Measured on SQLite and PostgreSQL:
#   - the full rollup rebuild, and an incremental refresh after 1,000 deaths;
#   - GET /api/v1/indicators/dashboard at the province, a city, a county and a town, sequential
#     (p50/p95/max per node) and under wrk at 16 connections (p99);
#   - the baseline: the same 80+ coverage by child region as one raw GROUP BY over the records
#     (what a dashboard without rollups would run).
# Usage: bench/indicators.sh [ELDERS]   (PG at postgres://postgres@127.0.0.1:5432, skipped if absent)
set -euo pipefail
cd "$(dirname "$0")/.."
ELDERS=${1:-1000000}
PGBASE=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --locked -p yiyang -q
BIN=$PWD/target/release/yiyang
W=$PWD/bench/out/indicators; rm -rf "$W"; mkdir -p "$W"
export YIYANG_KEY_FILE=$W/yiyang.key
echo "generating $ELDERS elders across a synthetic province and their assessments…"
$BIN gen-registry-file "$W/elders.csv" --rows "$ELDERS" --province >/dev/null
$BIN gen-assessment-file "$W/a.csv" --elders "$ELDERS" --share 0.42 --province >/dev/null
cat > "$W/targets.csv" <<'CSV'
序号,指标,2025,2026,属性
1,80周岁及以上老年人能力评估覆盖率,60%,100%,约束性
2,高龄津贴免申即享覆盖率,90%,95%,预期性
CSV
RESULTS=$W/results.tsv; : > "$RESULTS"
PORT=18282

sql() { # one statement on the engine under test
  if [ "$L" = sqlite ]; then sqlite3 "$W/y.db" "$1"; else psql "$DBURL" -qAt -c "$1"; fi
}

run_engine() { # db-url label
  DBURL=$1 L=$2
  export YIYANG_DATABASE_URL=$DBURL
  $BIN demo --scale 0 > "$W/$L-demo.log" 2>&1
  $BIN gen-province-regions >/dev/null
  $BIN import registry "$W/elders.csv" >/dev/null 2>&1
  $BIN import assessments "$W/a.csv" >/dev/null 2>&1
  $BIN indicators import-targets "$W/targets.csv" --region 320000000000 --source 基准测试 >/dev/null
  local t0 t1
  $BIN indicators rebuild --format json > "$W/$L-rebuild.json"
  # 1,000 deaths as the registry writes them (a new change number), then the server's refresh.
  local head; head=$(sql "SELECT seq FROM registry_head WHERE id = 1" | tr -d ' ')
  sql "UPDATE registry_head SET seq = $((head + 1)) WHERE id = 1" >/dev/null
  sql "UPDATE elder SET status = 'deceased', death_date = '2026-01-01', change_seq = $((head + 1)) WHERE id IN (SELECT id FROM elder WHERE status = 'active' ORDER BY citizen_id_bidx LIMIT 1000)" >/dev/null
  $BIN indicators refresh > "$W/$L-refresh.json"
  $BIN serve --profile demo --listen 127.0.0.1:$PORT > "$W/$L-serve.log" 2>&1 &
  local SPID=$!
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  # A province officer (aggregates only) for the runs.
  printf 'Bench-pass-2026\n' | $BIN user add --username province --display-name 省民政厅 --role officer --region 320000000000 --scopes aggregates >/dev/null 2>&1 || true
  curl -s -c "$W/cj" -H 'content-type: application/json' -d '{"username":"province","password":"Bench-pass-2026"}' "http://127.0.0.1:$PORT/api/v1/auth/login" >/dev/null
  # A new account sets its own password first.
  curl -s -b "$W/cj" -H 'content-type: application/json' -d '{"current_password":"Bench-pass-2026","new_password":"Bench-pass-2026-own"}' \
    "http://127.0.0.1:$PORT/api/v1/me/password" >/dev/null
  COOKIE=$(awk '$6=="yiyang_session"{print "yiyang_session="$7}' "$W/cj")
  python3 - "$COOKIE" "$PORT" "$L" >> "$RESULTS" <<'PY'
import sys, time, urllib.request, statistics
cookie, port, label = sys.argv[1], sys.argv[2], sys.argv[3]
nodes = [("province 320000", "320000000000"), ("city 320100", "320100000000"), ("county 320121", "320121000000"), ("town 320121101", "320121101000")]
for name, code in nodes:
    times = []
    for i in range(300):
        year = 2025 if i % 2 else 2026
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/indicators/dashboard?region_code={code}&year={year}", headers={"Cookie": cookie})
        t = time.perf_counter(); body = urllib.request.urlopen(req).read(); times.append((time.perf_counter() - t) * 1000)
    times.sort()
    print(f"{label}\tdashboard {name}\t{times[len(times)//2]:.2f}\t{times[int(len(times)*0.95)]:.2f}\t{times[-1]:.2f}\t{len(body)}")
PY
  cat > "$W/dash.lua" <<LUA
wrk.headers["Cookie"] = "$COOKIE"
local urls = {"/api/v1/indicators/dashboard?region_code=320000000000&year=2025", "/api/v1/indicators/dashboard?region_code=320100000000&year=2026",
  "/api/v1/indicators/dashboard?region_code=320121000000&year=2025", "/api/v1/indicators/dashboard?region_code=320121101000&year=2026"}
local n = 0
request = function() n = n + 1; return wrk.format("GET", urls[(n % #urls) + 1]) end
LUA
  wrk -t2 -c16 -d15s --latency -s "$W/dash.lua" "http://127.0.0.1:$PORT" > "$W/$L-wrk.txt"
  grep -E 'VmRSS|VmHWM' /proc/$SPID/status > "$W/$L-mem.txt"
  kill $SPID; wait $SPID 2>/dev/null || true
  # Baseline: 80+ coverage by city straight from the records, as one GROUP BY.
  local q="SELECT substr(e.residence_region, 1, 4), COUNT(*), SUM(CASE WHEN a.valid_until >= '2025-12-31' AND a.assessed_on <= '2025-12-31' THEN 1 ELSE 0 END) FROM elder e LEFT JOIN elder_ability a ON a.elder_id = e.id WHERE e.status = 'active' AND e.birth_date <= '1945-12-31' GROUP BY 1"
  for i in 1 2 3; do
    t0=$(date +%s.%N); sql "$q" >/dev/null; t1=$(date +%s.%N)
    echo -e "$L\traw GROUP BY by city (baseline)\t$(python3 -c "print(f'{($t1-$t0)*1000:.2f}')")\t\t\t" >> "$RESULTS"
  done
}

run_engine "$W/y.db" sqlite
if pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  psql "$PGBASE/postgres" -q -c "DROP DATABASE IF EXISTS yiyang_bench_ind" -c "CREATE DATABASE yiyang_bench_ind" >/dev/null
  run_engine "$PGBASE/yiyang_bench_ind" postgres
fi

python3 - "$W" <<'PY'
import json, re, sys, glob, os
w = sys.argv[1]
print(f"\n{'engine':9} {'what':42} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'bytes':>8}")
base = {}
for line in open(f"{w}/results.tsv"):
    eng, what, p50, p95, mx, size = (line.rstrip("\n").split("\t") + [""] * 6)[:6]
    if what.startswith("raw"):
        base.setdefault(eng, []).append(float(p50)); continue
    print(f"{eng:9} {what:42} {p50:>8} {p95:>8} {mx:>8} {size:>8}")
for eng, v in base.items():
    print(f"{eng:9} {'raw GROUP BY by city, best of 3 (baseline)':42} {min(v):>8.1f}")
for eng in ("sqlite", "postgres"):
    f = f"{w}/{eng}-rebuild.json"
    if not os.path.exists(f): continue
    r = json.load(open(f)); inc = json.load(open(f"{w}/{eng}-refresh.json"))
    t = open(f"{w}/{eng}-wrk.txt").read()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)
    p99 = re.search(r"\s99%\s+(\S+)", t).group(1)
    mem = dict(l.split(":", 1) for l in open(f"{w}/{eng}-mem.txt"))
    print(f"\n{eng}: full rebuild {r['elders']:,} elders, {r['rows_written']:,} rollup rows, {r['millis']/1000:.1f} s; "
          f"incremental after 1,000 deaths: {inc['towns']} towns, {inc['elders']:,} elders, {inc['millis']/1000:.2f} s; "
          f"wrk 16 connections: {rps} req/s, p99 {p99}; server RSS {int(mem['VmRSS'].split()[0])//1024} MB")
print("\nbudget (QUALITY.md): dashboard at any node up to a province p95 <= 100 ms from rollups; refresh lag <= 1 min")
PY
