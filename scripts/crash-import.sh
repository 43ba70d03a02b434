#!/usr/bin/env bash
# Reliability test: kill -9 the importer in the middle of a 1,000,000-row import. Afterwards the
# batch must be absent, the database must check clean, and a re-run must import every row once.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${CRASH_ROWS:-1000000}
cargo build --release --locked -p yiyang -q
BIN=$PWD/target/release/yiyang
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export YIYANG_DATABASE_URL=$W/yiyang.db YIYANG_KEY_FILE=$W/yiyang.key
$BIN demo --scale 0 >/dev/null
BASE=$(python3 -c "import sqlite3,sys;print(sqlite3.connect(sys.argv[1]).execute('select count(*) from elder').fetchone()[0])" "$W/yiyang.db")
$BIN gen-registry-file "$W/big.csv" --rows "$ROWS" >/dev/null
$BIN import registry "$W/big.csv" > "$W/import1.log" 2>&1 &
PID=$!
# Kill once the import's transaction has written a good part of the batch to the WAL.
for _ in $(seq 1 600); do
  sz=$(stat -c %s "$W/yiyang.db-wal" 2>/dev/null || echo 0)
  if [ "$sz" -gt 60000000 ]; then break; fi
  if ! kill -0 $PID 2>/dev/null; then echo "FAIL: import finished before it could be killed"; exit 1; fi
  sleep 0.1
done
kill -9 $PID; wait $PID 2>/dev/null || true
echo "killed the importer with WAL at $(( $(stat -c %s "$W/yiyang.db-wal") / 1000000 )) MB"
python3 - "$W/yiyang.db" "$BASE" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
assert db.execute("pragma integrity_check").fetchone()[0] == "ok", "integrity_check failed"
n = db.execute("select count(*) from elder").fetchone()[0]
assert n == int(sys.argv[2]), f"{n} rows after the crash, expected {sys.argv[2]}: part of the batch survived"
print(f"ok - after kill -9: integrity_check ok, {n} rows (none of the batch)")
PY
t=$(date +%s.%N)
$BIN import registry "$W/big.csv" --format json > "$W/import2.json"
$BIN import registry "$W/big.csv" --format json > "$W/import3.json"
python3 - "$W" "$BASE" "$ROWS" <<'PY'
import json, sqlite3, sys
w, base, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
a = json.load(open(f"{w}/import2.json")); b = json.load(open(f"{w}/import3.json"))
assert a["inserted"] == rows, a
assert b["inserted"] == 0 and b["unchanged"] == rows, b
n = sqlite3.connect(f"{w}/yiyang.db").execute("select count(*) from elder").fetchone()[0]
assert n == base + rows, n
print(f"ok - re-run imported {rows} rows exactly once in {a['seconds']:.1f} s ({rows/a['seconds']:.0f} rows/s); second re-run changed nothing")
PY
$BIN verify-audit
echo "crash test: 3 passed, 0 failed"
