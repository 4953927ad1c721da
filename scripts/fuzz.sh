#!/usr/bin/env bash
# Runs the cargo-fuzz (libFuzzer) target over the TS/PSI/TEMI parsers, TimelineTracker and the
# SPTS filter for DURATION seconds (default 600), with a corpus seeded from the shared TEMI
# vectors (../shared/media, or $DVB2IP_MEDIA_DIR). Crashes land in fuzz/artifacts/ts_parsers/.
#
#   scripts/fuzz.sh [DURATION_SECONDS] [extra libFuzzer flags...]
#
# Needs a nightly toolchain (cargo-fuzz builds with -Zsanitizer=address); the project's pinned
# stable toolchain is left alone. cargo-fuzz is installed from crates.io if missing.
set -euo pipefail

DURATION="${1:-600}"
shift || true
TARGET=ts_parsers
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: a nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz from crates.io" >&2
    cargo +nightly install cargo-fuzz
fi

MEDIA="${DVB2IP_MEDIA_DIR:-$ROOT/../shared/media}"
CORPUS="$ROOT/fuzz/corpus/$TARGET"
mkdir -p "$CORPUS"
if [ -z "$(ls -A "$CORPUS")" ]; then
    if [ ! -f "$MEDIA/temi_a_single_timeline.ts" ]; then
        echo "fuzz.sh: TEMI vectors not found in $MEDIA (set DVB2IP_MEDIA_DIR, or put them in ../shared/media)" >&2
        exit 2
    fi
    # Seeds: runs of 16 whole packets from every vector (byte 0 of an input picks the chunking
    # used to feed the reader: 0x00 = 188-byte chunks, 0x03 = all at once).
    n=0
    for ts in "$MEDIA"/*.ts; do
        size=$(stat -c %s "$ts")
        packets=$((size / 188))
        for ((i = 0; i < packets; i += 16)); do
            f="$CORPUS/seed-$(basename "$ts" .ts)-$i"
            if (( (i / 16) % 4 == 0 )); then mode='\000'; else mode='\003'; fi
            { printf "$mode"; dd if="$ts" bs=188 skip="$i" count=16 status=none; } > "$f"
            n=$((n + 1))
        done
    done
    echo "fuzz.sh: seeded $n inputs from $MEDIA" >&2
fi

echo "fuzz.sh: running $TARGET for $DURATION s" >&2
exec cargo +nightly fuzz run "$TARGET" "$CORPUS" -- \
    -max_total_time="$DURATION" -max_len=4096 -rss_limit_mb=4096 -print_final_stats=1 "$@"
