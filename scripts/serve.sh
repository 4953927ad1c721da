#!/usr/bin/env bash
# Runs `dvb2ip serve` on the emulated tuners (embedded default config, loopback only).
# Extra arguments go to `dvb2ip serve` (e.g. --rtsp-port 8554, --config conf/default.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ensure_packages $SERVER_PACKAGES
ensure_cargo
cargo build --release --bin dvb2ip
# The channel database (scanned at the first start, rescanned on idle frontends) lives in
# $DVB2IP_STATE_DIR, else /var/lib/dvb2ip, unless --state-dir is given.
args=("$@")
if [[ " $* " != *" --state-dir"* ]]; then
    state="${DVB2IP_STATE_DIR:-/var/lib/dvb2ip}"
    mkdir -p "$state"
    args=(--state-dir "$state" "${args[@]}")
fi
exec target/release/dvb2ip serve "${args[@]}"
