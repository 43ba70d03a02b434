#!/usr/bin/env bash
# Latency of the two hot reads under wrk at 64 connections (loopback, bounded): elder detail
# (auth + scope + masking + an audit row per read) and search (name fragment / region / age
# filters, paged), on a demo county of SCALE × 400k elders (default 2.5 → 1,000,000), next to
# /healthz on the same server as the baseline.   Usage: bench/http.sh [SCALE] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-2.5}; DUR=${2:-20}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --locked -p yiyang -q
BIN=$PWD/target/release/yiyang
W=$PWD/bench/out/http; rm -rf "$W"; mkdir -p "$W"
export YIYANG_DATABASE_URL=${BENCH_DB:-$W/yiyang.db} YIYANG_KEY_FILE=$W/yiyang.key
$BIN demo --scale "$SCALE" > "$W/demo.log"
PORT=18181
$BIN serve --profile demo --listen 127.0.0.1:$PORT > "$W/serve.log" 2>&1 &
SPID=$!; trap 'kill $SPID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
PW=$(awk '$1=="officer"{print $2}' "$W/demo-accounts.txt")
curl -s -c "$W/cj" -H 'content-type: application/json' -d "{\"username\":\"officer\",\"password\":\"$PW\"}" "http://127.0.0.1:$PORT/api/v1/auth/login" >/dev/null
COOKIE=$(awk '$6=="yiyang_session"{print "yiyang_session="$7}' "$W/cj")
# The first search waits for the in-memory search index to be built; keep that out of the runs.
curl -s -o /dev/null -b "$W/cj" -H 'content-type: application/json' -d '{}' "http://127.0.0.1:$PORT/api/v1/elders/search"
# 2,000 ids from across the county for the detail requests.
for p in $(seq 1 10); do
  curl -s -b "$W/cj" -H 'content-type: application/json' -d "{\"page\":$((p*37)),\"page_size\":200,\"sort\":\"name\"}" "http://127.0.0.1:$PORT/api/v1/elders/search"
  echo
done | python3 -c '
import json,sys
ids=[i["id"] for l in sys.stdin if l.strip() for i in json.loads(l)["items"]]
print("ids = {" + ",".join(json.dumps(i) for i in ids) + "}")' > "$W/ids.lua"
cat > "$W/detail.lua" <<LUA
dofile("$W/ids.lua")
wrk.headers["Cookie"] = "$COOKIE"
local n = 0
request = function() n = n + 1; return wrk.format("GET", "/api/v1/elders/" .. ids[(n % #ids) + 1]) end
LUA
cat > "$W/search.lua" <<LUA
wrk.headers["Cookie"] = "$COOKIE"
wrk.headers["Content-Type"] = "application/json"
local bodies = {
  '{"name":"秀英","page_size":20}',
  '{"region_code":"320682103000","age_min":80,"page_size":20}',
  '{"name":"王","region_code":"320682104000","page_size":20,"sort":"name"}',
  '{"living_status":"living_alone","economic_status":"minimum_living","page_size":20}',
  '{"region_code":"320682001005","page":3,"page_size":20}',
}
local n = 0
request = function() n = n + 1; return wrk.format("POST", "/api/v1/elders/search", nil, bodies[(n % #bodies) + 1]) end
LUA
echo 'wrk.headers["Cookie"] = "'"$COOKIE"'"' > "$W/health.lua"
run() { wrk -t2 -c64 -d"${DUR}s" --latency -s "$W/$1.lua" "http://127.0.0.1:$PORT$2" > "$W/$1.txt"; }
run health /healthz
run detail /
run search /
grep -E 'VmRSS|VmHWM' /proc/$SPID/status > "$W/memory.txt"
python3 - "$W" <<'PY'
import re, sys
w = sys.argv[1]
def parse(name):
    t = open(f"{w}/{name}.txt").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    def ms(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", t)
        v, u = float(m.group(1)), m.group(2)
        return v / 1000 if u == "us" else v * 1000 if u == "s" else v
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    return rps, ms(50), ms(99), int(errs.group(1)) if errs else 0
base = parse("health")
print(f"\n{'endpoint':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'rps vs /healthz':>16}")
for name, label in [("health", "GET /healthz (baseline)"), ("detail", "GET /api/v1/elders/{id} (audited)"), ("search", "POST /api/v1/elders/search")]:
    rps, p50, p99, e = parse(name)
    print(f"{label:34} {rps:>9.0f} {p50:>8.2f} {p99:>8.2f} {e:>8} {rps / base[0]:>16.3f}")
mem = dict(l.split(":", 1) for l in open(f"{w}/memory.txt"))
print(f"\nserver memory after the runs: RSS {int(mem['VmRSS'].split()[0]) // 1024} MB, peak {int(mem['VmHWM'].split()[0]) // 1024} MB (budget: a 400k county in <= 300 MB)")
print("\nbudgets (QUALITY.md, 1M elders, 64 connections): detail p99 <= 20 ms and >= 10k req/s; search p99 <= 100 ms")
PY
