#!/usr/bin/env bash
# A city's month of home visits and meals settled (居家上门服务结算: ≤ 20 s for 1.5M orders and
# meals, both engines). The demo county at full scale (20 providers and the meal points under
# contract), then ORDERS confirmed visits and MEALS meals in a month of their own (`gen-visits`:
# every active elder of the county, seven visits an hour apart in a caregiver's day, caregivers
# added as needed; meals by the subsidy's holders), then `yiyang homecare settle --dry-run`
# twice: one read of the month, the seven anomaly checks, prices, the split by level. The
# baseline is a raw read of the same rows with the same joins (sqlite3 / psql COPY to
# /dev/null), best of 3.
# Usage: bench/home-settlement.sh [ORDERS] [ENGINES] [MEALS]
#   (defaults 1060000, "sqlite postgres", 440000: the demo's holders of the meal subsidy in the
#   towns with a meal point eat about that many meals a month)
set -euo pipefail
cd "$(dirname "$0")/.."
ORDERS=${1:-1060000}; ENGINES=${2:-sqlite postgres}; MEALS=${3:-440000}
PGBASE=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
cargo build --release --locked -p yiyang -q
BIN=$PWD/target/release/yiyang
W=$PWD/bench/out/home-settlement; rm -rf "$W"; mkdir -p "$W"
export YIYANG_KEY_FILE=$W/yiyang.key YIYANG_AUDIT_CHECKPOINTS=off
# Two months back: the demo's own visits are last month's.
MONTH=$(date -d "$(date +%Y-%m-01) -2 month" +%Y-%m)
FROM=$(TZ=UTC date -d "$MONTH-01" +%s); TO=$(TZ=UTC date -d "$MONTH-01 +1 month" +%s)
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$@"; }
RAW="SELECT o.id, o.provider_id, o.caregiver_id, o.elder_id, o.service, substr(o.planned_start, 1, 10), o.check_in_min, o.check_out_min, \
o.check_in_lon, o.check_in_lat, e.lon, e.lat, e.death_date, s.phone_bidx, n.item_code \
FROM service_order o JOIN organisation p ON p.id = o.provider_id JOIN elder e ON e.id = o.elder_id \
LEFT JOIN staff s ON s.id = o.caregiver_id LEFT JOIN entitlement n ON n.id = o.entitlement_id \
WHERE o.state = 'confirmed' AND o.start_min >= $((FROM / 60)) AND o.start_min < $((TO / 60))"
RAW_MEALS="SELECT r.id, r.meal_point_id, r.elder_id, r.day, r.meal, r.subsidy_fen, e.death_date, r.item_code \
FROM meal_record r JOIN elder e ON e.id = r.elder_id WHERE r.day >= '$MONTH-01' AND r.day < '$(date -d "$MONTH-01 +1 month" +%Y-%m-%d)'"

run_engine() { # db-url label
  local DBURL=$1 L=$2 t0 t1
  export YIYANG_DATABASE_URL=$DBURL
  t0=$(date +%s.%N); $BIN demo --scale 1 > "$W/$L-demo.log" 2>&1; t1=$(date +%s.%N)
  echo "$L: demo county in $(secs "$t0" "$t1") s"
  t0=$(date +%s.%N); $BIN gen-visits --month "$MONTH" --orders "$ORDERS" --meals "$MEALS" > "$W/$L-gen.txt"; t1=$(date +%s.%N)
  echo "$L: $(cat "$W/$L-gen.txt") in $(secs "$t0" "$t1") s"
  if [ "$L" = postgres ]; then psql "$DBURL" -qc "ANALYZE" >/dev/null; fi
  for i in 1 2 3; do
    t0=$(date +%s.%N)
    if [ "$L" = sqlite ]; then sqlite3 "$W/y.db" "$RAW" "$RAW_MEALS" > /dev/null
    else psql "$DBURL" -qc "COPY ($RAW) TO STDOUT" -c "COPY ($RAW_MEALS) TO STDOUT" > /dev/null; fi
    t1=$(date +%s.%N)
    echo -e "$L\traw read of the month's rows (baseline)\t$(secs "$t0" "$t1")" >> "$W/times.tsv"
  done
  for i in 1 2; do
    t0=$(date +%s.%N)
    /usr/bin/time -f '%M' -o "$W/$L-rss-$i.txt" $BIN homecare settle --month "$MONTH" --dry-run --format json > "$W/$L-settle-$i.json"
    t1=$(date +%s.%N)
    echo -e "$L\thomecare settle --dry-run, run $i\t$(secs "$t0" "$t1")\t$(cat "$W/$L-rss-$i.txt")" >> "$W/times.tsv"
  done
}

case $ENGINES in *sqlite*) run_engine "$W/y.db" sqlite ;; esac
if [[ $ENGINES == *postgres* ]] && pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  psql "$PGBASE/postgres" -q -c "DROP DATABASE IF EXISTS yiyang_bench_home" -c "CREATE DATABASE yiyang_bench_home" >/dev/null
  run_engine "$PGBASE/yiyang_bench_home" postgres
fi

python3 - "$W" "$MONTH" <<'PY'
import json, sys, os
w, month = sys.argv[1:3]
print(f"\nmonth {month}")
best = {}
for line in open(f"{w}/times.tsv"):
    eng, what, s, *rss = line.rstrip("\n").split("\t")
    if what.startswith("raw"):
        best[eng] = min(best.get(eng, 1e9), float(s)); continue
    mb = f"  peak RSS {int(rss[0]) // 1024} MB" if rss and rss[0] else ""
    print(f"{eng:9} {what:40} {s:>7} s{mb}")
for eng, b in best.items():
    print(f"{eng:9} {'raw read of the same rows, best of 3':40} {b:>7.2f} s")
    f = f"{w}/{eng}-settle-1.json"
    if os.path.exists(f):
        d = json.load(open(f))
        orders = sum(p["orders"] for p in d["providers"])
        meals = sum(p["meals"] for p in d["providers"])
        self_paid = sum(p["self_paid"] for p in d["providers"])
        print(f"{eng:9} settled: {len(d['providers'])} providers and meal points, {orders:,} paid visits, {meals:,} meals, {self_paid:,} self-paid, "
              f"{len(d['excluded']):,} held back, payable {d['total_payable_fen'] / 100:,.2f} 元")
print("\nbudget: a city's month (1.5M orders and meals) settles in <= 20 s on both engines")
PY
