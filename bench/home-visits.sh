#!/usr/bin/env bash
# Caregivers checking in and out at once (居家上门: 200 at once keep p99 ≤ 100 ms). The demo county
# at SCALE, N caregivers of one provider with accounts and one visit each today (`gen-caregivers`),
# all logged in first (once the server's start-up work is done); then all at once, each on her own connection: accept, check in (with the
# phone's place), check out — 3N steps, each audited, p50/p99/max (bench/visits.py). The baseline:
# the same N clients each asking /healthz three times at once, through the same client, just before.
# The login limit per address is raised for the bench (all N come from 127.0.0.1).
# Usage: bench/home-visits.sh [N] [ENGINES] [SCALE]   (defaults 200, "sqlite postgres", 1)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200}; ENGINES=${2:-sqlite postgres}; SCALE=${3:-1}
PGBASE=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
cargo build --release --locked -p yiyang -q
BIN=$PWD/target/release/yiyang
W=$PWD/bench/out/home-visits; rm -rf "$W"; mkdir -p "$W"
export YIYANG_KEY_FILE=$W/yiyang.key YIYANG_AUDIT_CHECKPOINTS=off
PORT=18284

run_engine() { # db-url label
  local DBURL=$1 L=$2
  export YIYANG_DATABASE_URL=$DBURL
  $BIN demo --scale "$SCALE" > "$W/$L-demo.log" 2>&1
  printf 'Bench-caregiver-2026\n' | $BIN gen-caregivers --count "$N" > "$W/$L-gen.txt"
  YIYANG_LOGIN_PER_MINUTE=100000 $BIN serve --profile demo --listen 127.0.0.1:$PORT > "$W/$L-serve.log" 2>&1 &
  local SPID=$!
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  # As on a server that has been up a while: its start-up work (the registry's search index,
  # a core for a few seconds) done before the caregivers come.
  for _ in $(seq 1 600); do grep -q "search index built" "$W/$L-serve.log" && break; sleep 0.1; done
  python3 bench/visits.py "$PORT" "$N" "$L" Bench-caregiver-2026 >> "$W/results.tsv"
  kill $SPID; wait $SPID 2>/dev/null || true
}

case $ENGINES in *sqlite*) run_engine "$W/y.db" sqlite ;; esac
if [[ $ENGINES == *postgres* ]] && pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  psql "$PGBASE/postgres" -q -c "DROP DATABASE IF EXISTS yiyang_bench_visits" -c "CREATE DATABASE yiyang_bench_visits" >/dev/null
  run_engine "$PGBASE/yiyang_bench_visits" postgres
fi
echo
printf '%-9s %-44s %8s %8s %8s %6s %6s\n' engine what 'p50 ms' 'p99 ms' 'max ms' n errors
while IFS=$'\t' read -r e w a b c d f; do printf '%-9s %-44s %8s %8s %8s %6s %6s\n' "$e" "$w" "$a" "$b" "$c" "$d" "$f"; done < "$W/results.tsv"
echo; echo "budget: $N caregivers checking in and out at once keep p99 <= 100 ms"
