# shellcheck shell=bash
# Installs what Assay needs to build, run and test, from Debian 12's packages.
# Only missing packages are installed; needs root (or passwordless sudo) when any are missing.
ASSAY_PACKAGES="build-essential cmake ninja-build ccache pkg-config git ca-certificates curl \
  openssl python3 libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
  libabsl-dev libpq-dev libpqxx-dev libboost1.81-all-dev libboost-json1.81-dev \
  libboost-url1.81-dev libssl-dev prometheus-cpp-dev catch2 libyaml-cpp-dev \
  postgresql postgresql-client util-linux procps iproute2"
# Issue 9, sandbox executor: bubblewrap (bwrap) runs job steps in a sandbox.
ASSAY_PACKAGES="$ASSAY_PACKAGES bubblewrap"
# The asan, tsan, clang and fuzz test tiers (tests/run-all.sh): clang (clang++ itself comes
# with `clang`), its sanitizer runtimes and libFuzzer, and llvm-symbolizer (with `llvm`) for
# readable reports.
ASSAY_CLANG_PACKAGES="clang clang-14 libclang-rt-14-dev llvm llvm-14 clang-format"

install_deps() {  # install_deps [EXTRA_PACKAGES...]
  local missing=() p
  for p in $ASSAY_PACKAGES "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

build_assay() {  # build_assay SRC BUILD_DIR [targets...]
  local src=$1 build=$2; shift 2
  cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j "$(nproc)" ${1:+--target "$@"}
}
