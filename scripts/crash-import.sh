#!/usr/bin/env bash
# Reliability test: kill -9 the importer in the middle of a 1,000,000-row first load. Afterwards the
# batch must be absent, the database must check clean, and a re-run must import every row once.
# Then kill -9 half-way through a 400,000-row import into that registry in use: what it committed in
# chunks stays, the job row says so, and a re-run completes it with nobody twice.
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

# Into a registry in use an import commits in chunks: kill -9 half-way leaves the chunks it
# committed, the job row says how many, and re-running the same file completes it with nobody twice.
BASE2=$(python3 -c "import sqlite3,sys;print(sqlite3.connect(sys.argv[1]).execute('select count(*) from elder').fetchone()[0])" "$W/yiyang.db")
$BIN gen-registry-file "$W/more.csv" --rows 400000 --seed 11 >/dev/null
$BIN import registry "$W/more.csv" > "$W/import4.log" 2>&1 &
PID=$!
for _ in $(seq 1 600); do
  done_rows=$(python3 -c "import sqlite3,sys;r=sqlite3.connect(sys.argv[1]).execute(\"select committed_rows from import_job where state='running' order by created_at desc limit 1\").fetchone();print(r[0] if r else 0)" "$W/yiyang.db" 2>/dev/null || echo 0)
  if [ "${done_rows:-0}" -gt 100000 ]; then break; fi
  if ! kill -0 $PID 2>/dev/null; then echo "FAIL: import finished before it could be killed (at $done_rows rows)"; tail -5 "$W/import4.log"; exit 1; fi
  sleep 0.1
done
kill -9 $PID; wait $PID 2>/dev/null || true
# The server marks the interrupted job on start.
$BIN serve --profile demo --listen 127.0.0.1:18199 > "$W/serve.log" 2>&1 &
SPID=$!
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18199/healthz >/dev/null && break; sleep 0.1; done
kill $SPID; wait $SPID 2>/dev/null || true
python3 - "$W/yiyang.db" "$BASE2" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
assert db.execute("pragma integrity_check").fetchone()[0] == "ok", "integrity_check failed"
n = db.execute("select count(*) from elder").fetchone()[0] - int(sys.argv[2])
state, rows, ins, msg = db.execute("select state, committed_rows, inserted, message from import_job order by created_at desc limit 1").fetchone()
assert state == "failed" and rows > 0, (state, rows)
assert ins == n, f"the job says {ins} people were saved, the registry has {n} more"
assert f"新增 {ins} 人" in msg and f"前 {rows} 行" in msg, msg
print(f"ok - after kill -9 half-way into a registry in use: {n} people saved in chunks, and the job says so: {msg}")
PY
$BIN import registry "$W/more.csv" --format json > "$W/import5.json"
python3 - "$W" "$BASE2" <<'PY'
import json, sqlite3, sys
w, base = sys.argv[1], int(sys.argv[2])
a = json.load(open(f"{w}/import5.json"))
n = sqlite3.connect(f"{w}/yiyang.db").execute("select count(*) from elder").fetchone()[0]
db = sqlite3.connect(f"{w}/yiyang.db")
dups = db.execute("select count(*) from (select citizen_id_bidx from elder group by citizen_id_bidx having count(*) > 1)").fetchone()[0]
assert dups == 0, dups
assert a["rejected"] == 0 and a["accepted"] == a["total"], a
print(f"ok - the re-run completed it: {n - base} more people in all, nobody twice ({a['inserted']} new, {a['unchanged']} already saved, {a['updated']} updated)")
PY
$BIN verify-audit
echo "crash test: 5 passed, 0 failed"
