#!/usr/bin/env bash
# Browser tests: start yiyang on a fresh SQLite demo county and drive the web console in headless
# Chromium (playwright-core + Debian chromium): login → import with bad rows → error report →
# search → reveal with a reason → adopt an LTC rating → an assessor's due list, form and report →
# the audit viewer shows the reveal → the security admin creates, disables, enables and resets an
# account, which must then set its own password.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f web/dist/index.html ] && grep -q 'script' web/dist/index.html || (cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build)
cargo build --release --locked -p yiyang -q
BIN=$PWD/target/release/yiyang
W=$(mktemp -d)
PORT=${E2E_PORT:-18080}
export YIYANG_DATABASE_URL=$W/yiyang.db YIYANG_KEY_FILE=$W/yiyang.key
$BIN demo --scale 0.01 > "$W/demo.log"
$BIN gen-registry-file "$W/import.csv" --rows 300 --bad 12 --seed 99 >/dev/null
# The first 30 people of the same file again, as a town keeps them, 3 of them with corrections.
$BIN gen-registry-file "$W/乡镇上报.xlsx" --rows 30 --changed 3 --seed 99 --office >/dev/null
# Texts (the family's confirmation codes) go to a gateway the browser test stands in for.
SMS_PORT=${E2E_SMS_PORT:-18081}
# Device messages come through the broker (Mosquitto at 127.0.0.1:1883), under a session of
# this run's own.
YIYANG_MQTT_CLIENT_ID=yiyang-e2e-$$ YIYANG_NOTIFY_URL=http://127.0.0.1:$SMS_PORT/sms $BIN serve --profile demo --listen 127.0.0.1:$PORT --office-phone 0513-80000000 > "$W/serve.log" 2>&1 &
SPID=$!
# The broker keeps this run's session after it: a clean connection under the same id ends it.
trap 'kill $SPID 2>/dev/null || true; mosquitto_sub -h 127.0.0.1 -i yiyang-e2e-$$ -t yiyang/none -W 1 >/dev/null 2>&1 || true; rm -rf "$W"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
ACC="$W/demo-accounts.txt"
(cd e2e && npm ci --no-audit --no-fund --loglevel=error)
BASE_URL=http://127.0.0.1:$PORT \
USERNAME=officer PASSWORD=$(awk '$1=="officer"{print $2}' "$ACC") \
REVIEWER_USERNAME=reviewer REVIEWER_PASSWORD=$(awk '$1=="reviewer"{print $2}' "$ACC") \
ASSESSOR_USERNAME=assessor ASSESSOR_PASSWORD=$(awk '$1=="assessor"{print $2}' "$ACC") \
AUDIT_USERNAME=auditor AUDIT_PASSWORD=$(awk '$1=="auditor"{print $2}' "$ACC") \
SECURITY_USERNAME=security SECURITY_PASSWORD=$(awk '$1=="security"{print $2}' "$ACC") \
SYSADMIN_USERNAME=sysadmin SYSADMIN_PASSWORD=$(awk '$1=="sysadmin"{print $2}' "$ACC") \
MANAGER_USERNAME=home_manager MANAGER_PASSWORD=$(awk '$1=="home_manager"{print $2}' "$ACC") \
CAREGIVER_USERNAME=caregiver CAREGIVER_PASSWORD=$(awk '$1=="caregiver"{print $2}' "$ACC") SMS_PORT=$SMS_PORT \
MEAL_USERNAME=meal MEAL_PASSWORD=$(awk '$1=="meal"{print $2}' "$ACC") \
OPERATOR_USERNAME=operator OPERATOR_PASSWORD=$(awk '$1=="operator"{print $2}' "$ACC") \
VILLAGE_WORKER_USERNAME=village_worker VILLAGE_WORKER_PASSWORD=$(awk '$1=="village_worker"{print $2}' "$ACC") \
IMPORT_FILE="$W/import.csv" OFFICE_FILE="$W/乡镇上报.xlsx" SEARCH_NAME=秀 \
  node e2e/run.mjs
# Nothing personal leaked into the server log.
$BIN scan-clear-ids "$W/serve.log"
