#!/usr/bin/env bash
# Build everything (web console + release binary), fill ./data with the demo county, start yiyang.
# Usage: ./scripts/demo.sh [--scale F]   (default scale 1 = ~400,000 invented elders)
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=1
if [ "${1:-}" = "--scale" ]; then SCALE="$2"; fi
echo "==> 构建管理界面 (web/)"
(cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
echo "==> 构建 yiyang (release)"
cargo build --release --locked -p yiyang
echo "==> 生成演示县数据 (./data/yiyang.db)"
./target/release/yiyang demo --scale "$SCALE"
echo "==> 启动"
exec ./target/release/yiyang serve --profile demo --listen "${YIYANG_LISTEN:-127.0.0.1:8080}"
