#!/usr/bin/env bash
# Runs every libFuzzer target in fuzz/ (one per parser that takes bytes from the network or from
# files) for DURATION seconds each (default 600), one after the other, and prints a summary line
# per target: executions, corpus size, crashes. Crashes land in fuzz/artifacts/<target>/ and make
# the script exit 1.
#
#   scripts/fuzz.sh [DURATION_SECONDS] [TARGET ...]
#
# Builds with the stable toolchain and libFuzzer's coverage instrumentation (the flags cargo-fuzz
# passes with `--sanitizer none`), so neither nightly nor cargo-fuzz is needed. With
# FUZZ_SANITIZER=address it builds with nightly and AddressSanitizer instead (as `cargo +nightly
# fuzz run` does). Seeds come from the shared media (../shared/media or $DVB2IP_MEDIA_DIR), the
# repository's configuration and Debian's dtv-scan-tables when installed. FUZZ_JOBS (default 1)
# runs that many targets at once.
set -euo pipefail

DURATION="${1:-600}"
shift || true
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT/fuzz"

ALL=(ts_parsers mjpeg satip_query ssdp_message css_messages scan_si channel_files config rtsp_routing
     vod_requests relay_ts publish_auth satip_client)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")

FLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
FLAGS+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table"
FLAGS+=" -Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
TOOLCHAIN=()
TARGET_DIR="$ROOT/fuzz/target"
if [ "${FUZZ_SANITIZER:-none}" = address ]; then
    TOOLCHAIN=(+nightly)
    FLAGS+=" -Zsanitizer=address"
    TARGET_DIR="$ROOT/fuzz/target-asan"
fi
HOST="$(rustc -vV | sed -n 's/^host: //p')"
bins=()
for t in "${TARGETS[@]}"; do bins+=(--bin "$t"); done
echo "fuzz.sh: building ${TARGETS[*]}" >&2
# fuzz/Cargo.lock pins what the workspace's Cargo.lock pins, plus libFuzzer. When the workspace
# gained a dependency since, cargo adds just that (existing pins stay).
locked=(--locked)
if ! cargo metadata --locked --format-version 1 >/dev/null 2>&1; then
    echo "fuzz.sh: fuzz/Cargo.lock lacks new workspace dependencies; adding them" >&2
    locked=()
fi
RUSTFLAGS="$FLAGS" cargo "${TOOLCHAIN[@]}" build --release "${locked[@]}" --target "$HOST" \
    --target-dir "$TARGET_DIR" "${bins[@]}"

MEDIA="${DVB2IP_MEDIA_DIR:-$ROOT/../shared/media}"

# seed TARGET: fills fuzz/corpus/TARGET when empty.
seed() {
    local t=$1 dir="$ROOT/fuzz/corpus/$1" n=0 f
    mkdir -p "$dir"
    [ -n "$(ls -A "$dir")" ] && return 0
    put() { # put NAME PREFIX_BYTE_OCTAL FILE|-
        if [ "$3" = - ]; then { printf "$2"; cat; } >"$dir/$1"; else { printf "$2"; cat "$3"; } >"$dir/$1"; fi
        n=$((n + 1))
    }
    case $t in
    ts_parsers)
        for ts in "$MEDIA"/*.ts; do
            [ -f "$ts" ] || continue
            local packets=$(($(stat -c %s "$ts") / 188)) i
            for ((i = 0; i < packets && i < 2048; i += 16)); do
                { if (((i / 16) % 4 == 0)); then printf '\000'; else printf '\003'; fi
                  dd if="$ts" bs=188 skip="$i" count=16 status=none; } >"$dir/seed-$(basename "$ts" .ts)-$i"
                n=$((n + 1))
            done
        done ;;
    mjpeg)
        for m in "$MEDIA"/*.mjpeg; do [ -f "$m" ] && head -c 200000 "$m" | put "$(basename "$m")" '\000' -; done
        printf '00004\377\330\377\331' | put tiny '\000' - ;;
    satip_query)
        for q in '/?src=1&freq=11494&pol=h&ro=0.35&msys=dvbs2&mtype=8psk&plts=off&sr=22000&fec=23&pids=0,16,17' \
            '/?freq=474&bw=8&msys=dvbt&tmode=8k&mtype=64qam&gi=14&fec=23&pids=all' \
            '/stream=3?addpids=100,101&delpids=0' '/?freq=474&msys=dvbt2&plp=1&t2id=0&sm=0&bw=8&pids=' \
            'rtsp://u:p@127.0.0.1:554/?fe=2&freq=346&msys=dvbc&sr=6900&mtype=256qam&specinv=0' '*'; do
            printf '%s' "$q" | put "q$n" '' -
        done ;;
    ssdp_message)
        printf 'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 2\r\nST: urn:ses-com:device:SatIPServer:1\r\nDEVICEID.SES.COM: 1\r\n\r\n' | put search '' -
        printf 'NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1800\r\nLOCATION: http://127.0.0.1:8875/desc.xml\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\nSERVER: Linux/1.0 UPnP/1.1 dvb2ip/0.1\r\nUSN: uuid:6f7c2a1e-1d2b-4c3d-9e8f-0123456789ab::upnp:rootdevice\r\nBOOTID.UPNP.ORG: 1\r\nCONFIGID.UPNP.ORG: 7\r\nDEVICEID.SES.COM: 1\r\n\r\n' | put notify '' -
        printf 'HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\nLOCATION: http://127.0.0.1:8875/desc.xml\r\nST: upnp:rootdevice\r\nUSN: uuid:6f7c2a1e-1d2b-4c3d-9e8f-0123456789ab::upnp:rootdevice\r\n\r\n' | put response '' - ;;
    css_messages)
        printf '{"protocolVersion":"1.1","contentId":"dvb://233a.1004.1044;363a~20130218T0915Z--PT00H45M","contentIdStatus":"final","presentationStatus":"okay","mrsUrl":null,"tsUrl":"ws://127.0.0.1:7681/ts","wcUrl":"udp://127.0.0.1:6677","timelines":[{"timelineSelector":"urn:dvb:css:timeline:pts","timelineProperties":{"unitsPerTick":1,"unitsPerSecond":90000}}]}' | put cii '\000' -
        printf '{"contentIdStem":"dvb://","timelineSelector":"urn:dvb:css:timeline:temi:1:1"}' | put setup '\001' -
        printf '{"contentTime":"1234","wallClockTime":"5678","timelineSpeedMultiplier":1.0}' | put ct '\002' -
        printf '{"actual":{"contentTime":"1","wallClockTime":"2"},"earliest":{"contentTime":"1","wallClockTime":"minus_infinity"},"latest":{"contentTime":"1","wallClockTime":"plus_infinity"}}' | put aptept '\003' -
        printf 'dvb://233a.1004.1044;363a~20130218T0915Z--PT00H45M' | put cid '\004' -
        printf 'urn:dvb:css:timeline:mpd:period:rel:1000:p1' | put sel '\005' -
        printf '\000\001\000\000\000\000\000\000\000\000\000\001\000\000\000\002\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000' | put wc '\006' - ;;
    scan_si)
        for ts in "$MEDIA"/*.ts; do
            [ -f "$ts" ] || continue
            # Sections start after the pointer field of a payload_unit_start packet.
            local i
            for ((i = 0; i < 64; i++)); do
                dd if="$ts" bs=188 skip="$i" count=1 status=none | tail -c +6 | put "s-$(basename "$ts" .ts)-$i" '\000' -
            done
        done
        printf '\001\002\003\004\005\006\007\010\011\012\013' | put desc '\001' -
        printf '\137\004\000\000\000\050\203\014\001\001\374\001\001\002\374\002' | put lcn '\002' - ;;
    channel_files)
        for f in /usr/share/dvb/dvb-t/uk-CrystalPalace /usr/share/dvb/dvb-c/de-Kabel_BW /usr/share/dvb/dvb-s/Astra-19.2E; do
            [ -f "$f" ] && put "$(basename "$f")" '\000' "$f"
        done
        printf '[CHANNEL]\n\tDELIVERY_SYSTEM = DVBT\n\tFREQUENCY = 474000000\n\tBANDWIDTH_HZ = 8000000\n' | put initial '\000' -
        printf '{}' | put db '\001' - ;;
    config)
        put default '' "$ROOT/conf/default.toml"
        for c in "$ROOT"/conf/*.toml; do put "$(basename "$c")" '' "$c"; done ;;
    rtsp_routing)
        for u in 'rtsp://127.0.0.1:554/?freq=474&msys=dvbt' 'rtsp://u:p@h:1/stream=1' 'rtsp://[::1]:554/ch/news' '/ch/' '*'; do
            printf '%s' "$u" | put "u$n" '' -
        done ;;
    vod_requests)
        for p in 'a.ts' 'films/b%20c.mp4' 'films/sub/%252e.mjpeg' '..%2fsecret' 'out' 'etc/passwd' '%2e%2e/secret' '.hidden.ts'; do
            printf '%s' "$p" | put "p$n" '\000' -
        done
        printf 'bytes=0-1' | put r1 '\001' -
        printf 'bytes=-500' | put r2 '\001' -
        printf 'npt=30-' | put n1 '\002' -
        printf '4.0' | put n2 '\002' -
        printf '/vod/films/b%%20c.mp4/stream=0' | put v1 '\003' - ;;
    publish_auth)
        printf 'Digest username="alice", realm="dvb2ip", nonce="NONCE", uri="rtsp://127.0.0.1/live/x", response="0123456789abcdef0123456789abcdef"' | put d1 '\000' -
        printf 'Digest username="bob", realm="dvb2ip", nonce="NONCE", uri="rtsp://h/live/x", qop=auth, nc=00000001, cnonce="ab", response="00"' | put d2 '\005' -
        printf 'Basic YWxpY2U6c2VjcmV0' | put b1 '\002' - ;;
    satip_client)
        printf 'RTSP/1.0 200 OK\r\nCSeq: 2\r\nSession: 12345678;timeout=60\r\ncom.ses.streamID: 1\r\n\r\n' | put head '\000' -
        printf 'ver=1.0;src=1;tuner=1,255,1,15,474.00,8,dvbt2,,,,,,;pids=0,16,17' | put status '\003' -
        printf '<satip:X_SATIPCAP xmlns:satip="urn:ses-com:satip">DVBS2-1,DVBT2-2,DVBC-1</satip:X_SATIPCAP>' | put caps '\004' - ;;
    esac
    echo "fuzz.sh: seeded $n inputs for $t" >&2
}

status=0
run() {
    local t=$1
    seed "$t"
    mkdir -p "$ROOT/fuzz/artifacts/$t"
    local log="$ROOT/fuzz/artifacts/$t/last-run.log"
    if "$TARGET_DIR/$HOST/release/$t" "$ROOT/fuzz/corpus/$t" \
        -artifact_prefix="$ROOT/fuzz/artifacts/$t/" -max_total_time="$DURATION" -max_len=8192 \
        -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        local execs
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        echo "fuzz.sh: $t: ${DURATION} s, ${execs:-?} executions, $(ls "$ROOT/fuzz/corpus/$t" | wc -l) corpus inputs, 0 crashes"
    else
        echo "fuzz.sh: $t: FAILED (see $log and fuzz/artifacts/$t/)" >&2
        tail -30 "$log" >&2
        return 1
    fi
}

JOBS="${FUZZ_JOBS:-1}"
pids=()
for t in "${TARGETS[@]}"; do
    run "$t" &
    pids+=($!)
    if [ ${#pids[@]} -ge "$JOBS" ]; then
        wait "${pids[0]}" || status=1
        pids=("${pids[@]:1}")
    fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
