# shellcheck shell=bash
# Installs what Assay needs to build, run and test, from Debian 12's packages.
# Only missing packages are installed; needs root (or passwordless sudo) when any are missing.
ASSAY_PACKAGES="build-essential cmake ninja-build ccache pkg-config git ca-certificates curl \
  openssl python3 libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
  libabsl-dev libpq-dev libpqxx-dev libboost1.81-all-dev libboost-json1.81-dev \
  libboost-url1.81-dev libssl-dev prometheus-cpp-dev catch2 libyaml-cpp-dev \
  postgresql postgresql-client util-linux procps iproute2"
# Issue 9, Git LFS: the agent fetches LFS objects with git-lfs.
ASSAY_PACKAGES="$ASSAY_PACKAGES git-lfs"
# Issue 9, sandbox executor: bubblewrap (bwrap) runs job steps in a sandbox.
ASSAY_PACKAGES="$ASSAY_PACKAGES bubblewrap"
# The asan, tsan, clang and fuzz test tiers (tests/run-all.sh): clang (clang++ itself comes
# with `clang`), its sanitizer runtimes and libFuzzer, and llvm-symbolizer (with `llvm`) for
# readable reports.
ASSAY_CLANG_PACKAGES="clang clang-14 libclang-rt-14-dev llvm llvm-14 clang-format"
# Issue 9, container executor: podman and what it needs on Debian 12 (docs/executors.md); the
# tests build their images offline from busybox-static.
ASSAY_PACKAGES+=" podman buildah runc conmon netavark aardvark-dns catatonit uidmap slirp4netns \
  fuse-overlayfs busybox-static"
# netavark (podman's network stack) sets up each job's network with iptables, which Debian only
# recommends: without it every container with a network fails ("netavark: No such file or
# directory").
ASSAY_PACKAGES+=" iptables"
# Issue 9, build_image: the e2e tests push to Debian's docker-registry (htpasswd entries are
# bcrypt, made with libcrypt: tests/support/registry.cc).
ASSAY_PACKAGES+=" docker-registry libcrypt-dev"
# Issue 10, evals: RE2 runs dataset regexes in linear time.
ASSAY_PACKAGES+=" libre2-dev"
# Issue 10, examples/finetune and its e2e test: a tiny transformer trained with PyTorch on the
# CPU (Debian's build; a GPU machine brings its own). Only the tests install it (run-all.sh);
# the quickstart's sample (examples/llm-app) needs no PyTorch.
ASSAY_TEST_PACKAGES="python3-torch"
# Issue 11, the dashboard's browser tests: Debian's chromium, driven by playwright-core (npm).
ASSAY_TEST_PACKAGES+=" chromium"
# Issue 12, deployments: a real HAProxy in front of the example model servers and a real
# Prometheus scraping them (the e2e tests); promtool, systemd-analyze, kubectl and PyYAML check
# deploy/'s files (deploy/check.sh). kubectl only when none is installed: another package may
# provide it.
ASSAY_TEST_PACKAGES+=" haproxy prometheus systemd python3-yaml python3-kubernetes"
command -v kubectl >/dev/null 2>&1 || ASSAY_TEST_PACKAGES+=" kubernetes-client"

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

# Optimized like a release (-O2), with line tables only (-g1): backtraces and profiles name
# functions, files and lines, and a cold build takes about a quarter less than with full -g.
# Debian's python3 (the one python3-torch is installed for) goes first on PATH when the first
# python3 on PATH is another one (a pyenv shim, say) that cannot import torch: the agents that
# the tests start pass their PATH to jobs, and examples/finetune's `python3 train.py` needs torch.
prefer_debian_python() {
  if ! python3 -c 'import torch' >/dev/null 2>&1 && /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then
    echo "python3 on PATH ($(command -v python3)) has no torch; /usr/bin goes first on PATH" >&2
    export PATH="/usr/bin:$PATH"
  fi
}

build_assay() {  # build_assay SRC BUILD_DIR [targets...]
  local src=$1 build=$2; shift 2
  cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" >/dev/null
  cmake --build "$build" -j "$(nproc)" ${1:+--target "$@"}
}

# build_web SRC: the dashboard (SRC/web) into SRC/web/dist with the exact versions of
# web/package-lock.json (npm ci; Node 20 and npm come with the machine, not from Debian), once
# per change of its sources. Needs node and npm; says so and fails without them.
build_web() {
  local web=$1/web
  if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
    echo "build_web: node and npm are needed to build the dashboard (Node 20)" >&2
    return 1
  fi
  local stamp=$web/dist/.sources
  local sum
  sum=$(cd "$web" && cat package-lock.json build.mjs tsconfig.json $(find src -type f | sort) | sha256sum)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] && [ -d "$web/node_modules" ]; then return 0; fi
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error >/dev/null && npx tsc --noEmit -p . && node build.mjs) || return
  echo "$sum" >"$stamp"
}

# setup_podman: what podman needs on a fresh Debian 12 (docs/executors.md), idempotent. In
# containers.conf (ASSAY_CONTAINERS_CONF, default /etc/containers/containers.conf):
# `default_ulimits = []` under [containers] (Debian's default asks for a nofile limit that an
# unprivileged or nested host refuses), and `runtime = "runc"` under [engine] on cgroups v1
# (crun fails there) or where crun is missing. A storage.conf with fuse-overlayfs when
# /var/lib is itself on overlayfs (a container host), where the kernel's overlay cannot stack.
setup_podman() {
  local conf=${ASSAY_CONTAINERS_CONF:-/etc/containers/containers.conf} sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo mkdir -p "$(dirname "$conf")"
  [ -f "$conf" ] || echo "[containers]" | $sudo tee "$conf" >/dev/null
  grep -q '^\[containers\]' "$conf" || printf '\n[containers]\n' | $sudo tee -a "$conf" >/dev/null
  if ! grep -q '^default_ulimits *=' "$conf"; then
    $sudo sed -i '0,/^\[containers\]/s//[containers]\ndefault_ulimits = []/' "$conf"
  fi
  if ! grep -q '^runtime *=' "$conf"; then
    if ! command -v crun >/dev/null || [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then
      grep -q '^\[engine\]' "$conf" || printf '\n[engine]\n' | $sudo tee -a "$conf" >/dev/null
      $sudo sed -i '0,/^\[engine\]/s//[engine]\nruntime = "runc"/' "$conf"
    fi
  fi
  local storage=${ASSAY_STORAGE_CONF:-/etc/containers/storage.conf}
  if [ "$(stat -fc %T /var/lib 2>/dev/null)" = overlayfs ] && [ ! -f "$storage" ]; then
    printf '[storage]\ndriver = "overlay"\nrunroot = "/run/containers/storage"\n%s\n%s\n%s\n' \
      'graphroot = "/var/lib/containers/storage"' '[storage.options.overlay]' \
      'mount_program = "/usr/bin/fuse-overlayfs"' | $sudo tee "$storage" >/dev/null
  fi
}
