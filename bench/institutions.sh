#!/usr/bin/env bash
# Beds, residents, claims and their indicators at province scale (养老机构与床位: the dashboard in
# p95 <= 100 ms, a month's claims in <= 10 s for 5,000 homes and 500,000 beds). A synthetic
# province (12 cities, 72 counties) plus the demo county, ELDERS people across it, and FACILITIES
# homes with BEDS beds about 70 % occupied by them (`gen-institutions`). On SQLite and PostgreSQL:
#   - GET the indicator dashboard (nursing-bed share, beds per 1,000, occupancy … from rollups),
#     the bed summary of every home, the month's claims and one home's occupancy, at the province
#     and at a county, sequentially (p50/p95/max of 200 each);
#   - POST /bed-claims: the province's claims for last month, made from the records, twice (the
#     second makes the drafts again);
#   - the baseline: occupied and total beds by city straight from the records as one GROUP BY
#     (what a dashboard without rollups would run).
# Usage: bench/institutions.sh [ELDERS] [FACILITIES] [BEDS] [ENGINES]   (ENGINES: "sqlite postgres" by
# default; PG at postgres://postgres@127.0.0.1:5432)
set -euo pipefail
cd "$(dirname "$0")/.."
ELDERS=${1:-1000000}; FACILITIES=${2:-5000}; BEDS=${3:-500000}; ENGINES=${4:-sqlite postgres}
PGBASE=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
cargo build --release --locked -p yiyang -q
BIN=$PWD/target/release/yiyang
W=$PWD/bench/out/institutions; rm -rf "$W"; mkdir -p "$W"
export YIYANG_KEY_FILE=$W/yiyang.key YIYANG_AUDIT_CHECKPOINTS=off
echo "generating $ELDERS elders across a synthetic province…"
$BIN gen-registry-file "$W/elders.csv" --rows "$ELDERS" --province >/dev/null
RESULTS=$W/results.tsv; : > "$RESULTS"
PORT=18283
LAST=$(date -d "$(date +%Y-%m-01) -1 day" +%Y-%m)

sql() { if [ "$L" = sqlite ]; then sqlite3 "$W/y.db" "$1"; else psql "$DBURL" -qAt -c "$1"; fi; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$@"; }

run_engine() { # db-url label
  DBURL=$1 L=$2
  export YIYANG_DATABASE_URL=$DBURL
  $BIN demo --scale 0 > "$W/$L-demo.log" 2>&1
  $BIN gen-province-regions >/dev/null
  $BIN import registry "$W/elders.csv" >/dev/null 2>&1
  local t0 t1
  t0=$(date +%s.%N); $BIN gen-institutions --facilities "$FACILITIES" --beds "$BEDS" > "$W/$L-gen.txt"; t1=$(date +%s.%N)
  echo "$L: $(cat "$W/$L-gen.txt") in $(secs "$t0" "$t1") s"
  t0=$(date +%s.%N); $BIN indicators rebuild --format json > "$W/$L-rebuild.json"; t1=$(date +%s.%N)
  echo -e "$L\trollup rebuild (people and homes)\t$(secs "$t0" "$t1")" >> "$W/$L-times.tsv"
  $BIN serve --profile demo --listen 127.0.0.1:$PORT > "$W/$L-serve.log" 2>&1 &
  local SPID=$!
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  printf 'Bench-pass-2026\n' | $BIN user add --username province --display-name 省民政厅 --role officer --region 320000000000 >/dev/null 2>&1 || true
  curl -s -c "$W/cj" -H 'content-type: application/json' -d '{"username":"province","password":"Bench-pass-2026"}' "http://127.0.0.1:$PORT/api/v1/auth/login" >/dev/null
  # A new account sets its own password first.
  curl -s -b "$W/cj" -H 'content-type: application/json' -d '{"current_password":"Bench-pass-2026","new_password":"Bench-pass-2026-own"}' \
    "http://127.0.0.1:$PORT/api/v1/me/password" >/dev/null
  COOKIE=$(awk '$6=="yiyang_session"{print "yiyang_session="$7}' "$W/cj")
  local org; org=$(sql "SELECT o.id FROM organisation o WHERE o.region_code LIKE '3201%' ORDER BY o.id LIMIT 1" | tr -d ' ')
  # The first page of the province's list of homes, as the console asks for its beds.
  local page; page=$(sql "SELECT id FROM organisation ORDER BY region_code, name LIMIT 20" | tr -d ' ' | paste -sd, -)
  for i in 1 2; do
    t0=$(date +%s.%N)
    curl -sf -b "$W/cj" -H 'content-type: application/json' -d "{\"region_code\":\"320000000000\",\"month\":\"$LAST\"}" \
      "http://127.0.0.1:$PORT/api/v1/bed-claims" > "$W/$L-claims-$i.json"
    t1=$(date +%s.%N)
    echo -e "$L\tPOST /bed-claims, province, $LAST (run $i)\t$(secs "$t0" "$t1")" >> "$W/$L-times.tsv"
  done
  python3 - "$COOKIE" "$PORT" "$L" "$LAST" "$org" "$page" >> "$RESULTS" <<'PY'
import sys, time, urllib.request
cookie, port, label, month, org, page = sys.argv[1:7]
gets = [
    ("dashboard, province", "/api/v1/indicators/dashboard?region_code=320000000000"),
    ("dashboard, county 320121", "/api/v1/indicators/dashboard?region_code=320121000000"),
    ("beds of a page of 20 homes, province", f"/api/v1/bed-summary?region_code=320000000000&org_ids={page}"),
    ("beds of every home, county 320121", "/api/v1/bed-summary?region_code=320121000000"),
    ("list of homes, page 1, province", "/api/v1/orgs?region_code=320000000000&page=1&page_size=20"),
    ("claims of the month, province", f"/api/v1/bed-claims?region_code=320000000000&month={month}"),
    ("claims of the month, county 320121", f"/api/v1/bed-claims?region_code=320121000000&month={month}"),
    ("one home's occupancy", f"/api/v1/orgs/{org}/occupancy?month={month}"),
]
for name, path in gets:
    times = []
    for i in range(200):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Cookie": cookie})
        t = time.perf_counter(); body = urllib.request.urlopen(req).read(); times.append((time.perf_counter() - t) * 1000)
    times.sort()
    print(f"{label}\t{name}\t{times[len(times)//2]:.2f}\t{times[int(len(times)*0.95)]:.2f}\t{times[-1]:.2f}\t{len(body)}")
PY
  grep -E 'VmRSS|VmHWM' /proc/$SPID/status > "$W/$L-mem.txt"
  kill $SPID; wait $SPID 2>/dev/null || true
  local today; today=$(date +%Y-%m-%d)
  local q="SELECT substr(o.region_code, 1, 4), COUNT(b.id), COUNT(s.id) FROM bed b JOIN organisation o ON o.id = b.org_id LEFT JOIN bed_stay s ON s.bed_id = b.id AND s.from_on <= '$today' AND (s.until_on IS NULL OR s.until_on > '$today') WHERE b.opened_on <= '$today' AND (b.retired_on IS NULL OR b.retired_on > '$today') GROUP BY 1"
  for i in 1 2 3; do
    t0=$(date +%s.%N); sql "$q" >/dev/null; t1=$(date +%s.%N)
    echo -e "$L\traw GROUP BY by city (baseline)\t$(python3 -c "print(f'{($t1-$t0)*1000:.2f}')")\t\t\t" >> "$RESULTS"
  done
}

case $ENGINES in *sqlite*) run_engine "$W/y.db" sqlite ;; esac
if [[ $ENGINES == *postgres* ]] && pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  psql "$PGBASE/postgres" -q -c "DROP DATABASE IF EXISTS yiyang_bench_inst" -c "CREATE DATABASE yiyang_bench_inst" >/dev/null
  run_engine "$PGBASE/yiyang_bench_inst" postgres
fi

python3 - "$W" <<'PY'
import json, sys, os
w = sys.argv[1]
print(f"\n{'engine':9} {'what':40} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'bytes':>9}")
base = {}
for line in open(f"{w}/results.tsv"):
    eng, what, p50, p95, mx, size = (line.rstrip("\n").split("\t") + [""] * 6)[:6]
    if what.startswith("raw"):
        base.setdefault(eng, []).append(float(p50)); continue
    print(f"{eng:9} {what:40} {p50:>8} {p95:>8} {mx:>8} {size:>9}")
for eng, v in base.items():
    print(f"{eng:9} {'raw GROUP BY by city, best of 3 (baseline)':40} {min(v):>8.1f}")
for eng in ("sqlite", "postgres"):
    f = f"{w}/{eng}-times.tsv"
    if not os.path.exists(f): continue
    for line in open(f):
        _, what, s = line.rstrip("\n").split("\t")
        print(f"{eng:9} {what:52} {s:>7} s")
    c = json.load(open(f"{w}/{eng}-claims-1.json"))
    print(f"{eng:9} claims: {c['claims']:,} homes, {c['lines']:,} lines, {c['excluded']:,} with excluded days, {c['total']:,.2f} 元 ({c['ms']} ms in the server)")
print("\nbudget: the dashboard p95 <= 100 ms; a month's claims for the province <= 10 s")
PY
