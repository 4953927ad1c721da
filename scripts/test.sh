#!/usr/bin/env bash
# Runs the whole test suite. Installs the Debian packages it needs when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ensure_packages $SERVER_PACKAGES $TEST_PACKAGES
ensure_cargo
# Generated emulated-broadcast content is cached per checkout (made once, ~30 s).
export DVB2IP_CACHE_DIR="${DVB2IP_CACHE_DIR:-$PWD/target/dvb2ip-cache}"

cargo build --workspace --all-targets

# The meson build (meson 1.0): setup, compile, its tests, and an install that gst-inspect finds.
rm -rf target/meson-build target/meson-dest
meson setup target/meson-build -Dcargo_target_dir="$PWD/target" >/dev/null   # meson's default prefix
meson compile -C target/meson-build
meson test -C target/meson-build --print-errorlogs
DESTDIR="$PWD/target/meson-dest" meson install -C target/meson-build >/dev/null
plugindir=$(pkg-config --variable=pluginsdir gstreamer-1.0)
GST_PLUGIN_PATH="$PWD/target/meson-dest$plugindir" GST_REGISTRY="$PWD/target/meson-registry.bin" \
  gst-inspect-1.0 dvbtunersrc >/dev/null
test -x "target/meson-dest/usr/local/bin/dvb2ip"
# The systemd unit: installed, and valid to systemd (pointed at the installed binary, since
# verify checks that ExecStart exists).
unit="target/meson-dest/usr/local/lib/systemd/system/dvb2ip.service"
test -f "$unit"
sed "s|/usr/local/bin/dvb2ip|$PWD/target/meson-dest/usr/local/bin/dvb2ip|" "$unit" > target/dvb2ip.service
systemd-analyze verify target/dvb2ip.service
systemd-analyze security --offline=yes target/dvb2ip.service | tail -n 1
echo "meson: build, test and install OK"

set +e
cargo test --workspace --no-fail-fast --lib --bins --tests 2>&1 | tee target/test-output.log
rc=${PIPESTATUS[0]}
set -e
# Every fuzz target for a short time (scripts/fuzz.sh 600 is the 10-minute run per target).
set +e
bash scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
fuzz_rc=$?
set -e
[ "$rc" -eq 0 ] && rc=$fuzz_rc
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' target/test-output.log
exit "$rc"
