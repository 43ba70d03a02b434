#!/usr/bin/env bash
# Eligibility evaluation (issue 4: 1M elders × 20 items ≤ 10 s on SQLite and PostgreSQL), next to a
# raw read of the same columns (the floor: what only fetching the facts costs): Python sqlite3
# fetchall / psql COPY to /dev/null. Runs: the first evaluation (grants everyone eligible), a second
# with nothing changed (must write nothing), and one after 1,000 deaths.
# Usage: bench/catalog-evaluate.sh [ELDERS]   (PG at postgres://postgres@127.0.0.1:5432, skipped if absent)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
ELDERS=${1:-1000000}
PGBASE=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
cargo build --release --locked -p yiyang -q
BIN=$PWD/target/release/yiyang
W=$PWD/bench/out/catalog; rm -rf "$W"; mkdir -p "$W"
export YIYANG_KEY_FILE=$W/yiyang.key
echo "generating $ELDERS elders, their assessments and a 20-item catalogue…"
$BIN gen-registry-file "$W/elders.csv" --rows "$ELDERS" >/dev/null
$BIN gen-assessment-file "$W/a.csv" --elders "$ELDERS" --share 0.42 >/dev/null
python3 bench/catalog-items.py "$W/items.json"
RESULTS=$W/results.tsv; : > "$RESULTS"
COLS="e.id, e.birth_date, e.sex, e.residence_region, e.hukou_region, e.status, e.living_status, e.economic_status, e.family_planning_special, e.disability_grade, e.entitled_veteran_family, e.death_date, e.moved_out_date, a.level, a.valid_until"
FACTS="SELECT $COLS FROM elder e LEFT JOIN elder_ability a ON a.elder_id = e.id"

timed_eval() { # db-url label
  settle "$1"
  local t0 t1; t0=$(date +%s.%N)
  YIYANG_DATABASE_URL=$1 $BIN catalog evaluate --region 320682000000 --format json > "$W/last.json" 2>/dev/null
  t1=$(date +%s.%N)
  python3 - "$W/last.json" "$2" "$t0" "$t1" >> "$RESULTS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["runs"][0]; secs = float(sys.argv[4]) - float(sys.argv[3])
print(f"{sys.argv[2]}\t{r['elders']}\t{len(r['items'])}\t{r['changes']}\t{secs:.2f}\t{r['millis']/1000:.2f}")
PY
}
deaths() { # db-url: 1,000 deaths of 高龄津贴 holders (living, born before 1945) through SQL (the
  # registry's own path is tested elsewhere); the next run ends what they held.
  echo "UPDATE elder SET status = 'deceased', death_date = '2026-01-01' WHERE id IN (SELECT id FROM elder WHERE status = 'active' AND birth_date < '1945-01-01' ORDER BY id LIMIT 1000);"
}

run_engine() { # db-url label-prefix raw-read-command…
  local DBURL=$1 L=$2
  YIYANG_DATABASE_URL=$DBURL $BIN demo --scale 0 >/dev/null 2>&1
  YIYANG_DATABASE_URL=$DBURL $BIN import registry "$W/elders.csv" >/dev/null 2>&1
  YIYANG_DATABASE_URL=$DBURL $BIN import assessments "$W/a.csv" >/dev/null 2>&1
  YIYANG_DATABASE_URL=$DBURL $BIN catalog publish "$W/items.json" --region 320682000000 --effective-from 2025-01-01 >/dev/null
  timed_eval "$DBURL" "$L first run (grants)"
  timed_eval "$DBURL" "$L second run, nothing changed"
}

# --- SQLite
DB=$W/sqlite.db
run_engine "$DB" sqlite
python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()" "$DB" "$(deaths)"
timed_eval "$DB" "sqlite after 1,000 deaths"
python3 - "$DB" "$FACTS" >> "$RESULTS" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1]); t = time.time()
n = len(db.execute(sys.argv[2]).fetchall())
print(f"sqlite raw read of the facts (python fetchall)\t{n}\t-\t-\t{time.time() - t:.2f}\t-")
PY

# --- PostgreSQL
if pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  PG=$PGBASE/yiyang_bench_catalog
  psql -q "$PGBASE/test" -c "DROP DATABASE IF EXISTS yiyang_bench_catalog" -c "CREATE DATABASE yiyang_bench_catalog" >/dev/null
  run_engine "$PG" postgres
  psql -q "$PG" -c "$(deaths)" >/dev/null
  timed_eval "$PG" "postgres after 1,000 deaths"
  t0=$(date +%s.%N)
  n=$(psql -q "$PG" -c "\\copy ($FACTS) TO '/dev/null'" | wc -l)
  t1=$(date +%s.%N)
  echo -e "postgres raw read of the facts (COPY to /dev/null)\t$ELDERS\t-\t-\t$(python3 -c "print(f'{$t1-$t0:.2f}')")\t-" >> "$RESULTS"
  psql -q "$PGBASE/test" -c "DROP DATABASE IF EXISTS yiyang_bench_catalog" >/dev/null
fi

python3 - "$RESULTS" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
raw = {r[0].split()[0]: float(r[4]) for r in rows if "raw read" in r[0]}
print(f"{'run':<48} {'elders':>9} {'items':>5} {'changes':>8} {'wall s':>7} {'job s':>6} {'vs raw read':>11}")
for r in rows:
    ratio = float(r[4]) / raw[r[0].split()[0]] if r[0].split()[0] in raw else float('nan')
    print(f"{r[0]:<48} {r[1]:>9} {r[2]:>5} {r[3]:>8} {r[4]:>7} {r[5]:>6} {ratio:>10.1f}x")
print("budget: 1M elders × 20 items ≤ 10 s on each engine")
PY
