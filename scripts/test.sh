#!/usr/bin/env bash
# The test command: formatting, lints, and the whole test suite on SQLite.
# Set TEST_DATABASE_URL=postgres://… to run the storage tests on PostgreSQL instead.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
if [ -d web/node_modules ]; then (cd web && npm run typecheck --silent); fi
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked "$@"
else
  cargo test --locked "$@"
fi
