#!/usr/bin/env bash
# Caregivers checking in and out at once (居家上门: 200 at once keep p99 ≤ 100 ms). The demo county
# at SCALE, N caregivers of one provider with accounts and one visit each today (`gen-caregivers`),
# all logged in first; then all at once, each on her own connection: accept, check in (with the
# phone's place), check out — 3N steps, each audited, p50/p99/max. The baseline: the same N
# clients each asking /healthz three times at once, through the same client code, just before.
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
  python3 - "$PORT" "$N" "$L" >> "$W/results.tsv" <<'PY'
import http.client, json, sys, threading, time, uuid
port, n, label = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def conn():
    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)
def login(i):
    c = conn()
    c.request("POST", "/api/v1/auth/login", json.dumps({"username": f"cg{i + 1:04}", "password": "Bench-caregiver-2026"}),
              {"content-type": "application/json"})
    r = c.getresponse(); r.read()
    cookie = [v.split(";")[0] for k, v in r.getheaders() if k.lower() == "set-cookie" and v.startswith("yiyang_session")][0]
    c.request("GET", "/api/v1/service-orders", headers={"Cookie": cookie})
    r = c.getresponse(); orders = json.loads(r.read())
    return c, cookie, orders[0]["id"]
clients = [None] * n
def do_login(i): clients[i] = login(i)
ts = [threading.Thread(target=do_login, args=(i,)) for i in range(n)]
[t.start() for t in ts]; [t.join() for t in ts]
def run(work):
    lat, errors = [], []
    barrier = threading.Barrier(n)
    def one(i):
        barrier.wait()
        for method, path, body in work(i):
            c, cookie, _ = clients[i]
            hdr = {"Cookie": cookie, "content-type": "application/json"}
            t = time.perf_counter()
            c.request(method, path, json.dumps(body) if body is not None else None, hdr)
            r = c.getresponse(); data = r.read()
            lat.append((time.perf_counter() - t) * 1000)
            if r.status >= 300: errors.append(f"{r.status} {data[:120]!r}")
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    [t.start() for t in ts]; [t.join() for t in ts]
    lat.sort()
    return lat, errors
def steps(i):
    oid = clients[i][2]
    for action in ("accept", "check_in", "check_out"):
        yield "POST", f"/api/v1/service-orders/{oid}/steps", {"step_id": str(uuid.uuid4()), "action": action, "lon": 120.57, "lat": 32.39}
base, _ = run(lambda i: [("GET", "/healthz", None)] * 3)
lat, errors = run(steps)
p = lambda v, q: v[min(len(v) - 1, int(len(v) * q))]
print(f"{label}\t/healthz x3 each, {n} at once (baseline)\t{p(base, .5):.1f}\t{p(base, .99):.1f}\t{base[-1]:.1f}\t{len(base)}\t0")
print(f"{label}\taccept, check in, check out, {n} at once\t{p(lat, .5):.1f}\t{p(lat, .99):.1f}\t{lat[-1]:.1f}\t{len(lat)}\t{len(errors)}")
if errors: print("errors:", errors[:3], file=sys.stderr)
PY
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
