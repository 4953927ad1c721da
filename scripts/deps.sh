# Sourced by the scripts: installs the Debian 12 packages dvb2ip needs, only when missing.

SERVER_PACKAGES="pkg-config gcc libc6-dev libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  libgstreamer-plugins-bad1.0-dev libgstrtspserver-1.0-dev gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp"
TEST_PACKAGES="ffmpeg meson ninja-build iproute2 curl gupnp-tools vlc-bin vlc-plugin-base tshark
  vdr vdr-plugin-satip dtv-scan-tables dvb-tools prometheus systemd chromium chromium-driver"

ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "dvb2ip: installing Debian packages: ${missing[*]}" >&2
    if [ "$(id -u)" != 0 ]; then
      echo "dvb2ip: run as root (or install them yourself): apt-get install -y ${missing[*]}" >&2
      return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q "${missing[@]}"
  fi
}

ensure_cargo() {
  if ! command -v cargo >/dev/null 2>&1; then
    for d in "$HOME/.cargo/bin" /usr/local/cargo/bin; do
      [ -x "$d/cargo" ] && export PATH="$d:$PATH"
    done
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    # Debian 12's own rustc (1.63) is too old for gstreamer-rs: install rustup, which then
    # installs the toolchain rust-toolchain.toml pins on the first cargo call.
    echo "dvb2ip: cargo not found; installing the Rust toolchain with rustup into $HOME/.cargo" >&2
    ensure_packages curl ca-certificates || return 1
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
      | sh -s -- -y --profile minimal --default-toolchain none --no-modify-path || {
      echo "dvb2ip: installing rustup failed; install the Rust toolchain yourself (https://rustup.rs)" >&2
      return 1
    }
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
}
