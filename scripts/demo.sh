#!/usr/bin/env bash
# Build everything (web console + release binary), fill ./data with the demo county, start yiyang.
# Usage: ./scripts/demo.sh [--scale F] [--listen ADDR]
#   --scale F      size of the invented county (default 1 = ~400,000 elders)
#   --listen ADDR  where to serve (default 127.0.0.1:8080; also YIYANG_LISTEN)
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=1
LISTEN=${YIYANG_LISTEN:-127.0.0.1:8080}
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE="$2"; shift 2 ;;
    --listen) LISTEN="$2"; shift 2 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "未知参数：$1（可用 --scale F、--listen 地址:端口）" >&2; exit 2 ;;
  esac
done
echo "==> 构建管理界面 (web/)"
(cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
echo "==> 构建 yiyang (release)"
cargo build --release --locked -p yiyang
echo "==> 生成演示县数据 (./data/yiyang.db)"
./target/release/yiyang demo --scale "$SCALE"
echo "==> 启动：http://$LISTEN （演示账号见 data/demo-accounts.txt）"
exec ./target/release/yiyang serve --profile demo --listen "$LISTEN"
