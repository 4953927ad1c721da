#!/usr/bin/env bash
# Runs `dvb2ip serve` on the emulated tuners (embedded default config, loopback only).
# Extra arguments go to `dvb2ip serve` (e.g. --rtsp-port 8554, --config conf/default.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ensure_packages $SERVER_PACKAGES
ensure_cargo
cargo build --release --bin dvb2ip
exec target/release/dvb2ip serve "$@"
