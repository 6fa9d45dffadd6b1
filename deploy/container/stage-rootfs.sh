#!/bin/sh
# Stages the root filesystem of Assay's offline container images: the binaries of a build
# directory, exactly the shared libraries they load (ldd) and nothing else, for an image
# `FROM scratch` (deploy/container/Containerfile.server-runtime, Containerfile.agent-runtime)
# that needs no base image from a registry. The project's own pipeline (.assay.yml, job
# `images`) builds the images from what this stages; tests/e2e/images_test.cc runs that job.
#
#   deploy/container/stage-rootfs.sh BUILD_DIR OUT_DIR server|agent
#
# server: assay-server and the assay CLI in /usr/local/bin, the dashboard (web/dist) in
#         /usr/local/share/assay/web (the server's default --web-dir), CA certificates.
# agent:  assay-agent, git (with its http(s) transport) and a static busybox (its applets, /bin/sh
#         among them, for `run:` steps), CA certificates.
# Both: user and group assay (10001), /etc/hosts and nsswitch.conf, /tmp, /var/lib/assay.
# WEB_DIST: the built dashboard (default web/dist). Binaries are copied without debug information. Needs ldd, strip (binutils) and, for the agent,
# Debian's busybox-static.
set -eu
[ $# -eq 3 ] || { echo "usage: $0 BUILD_DIR OUT_DIR server|agent" >&2; exit 2; }
build=$1 out=$2 role=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
case $role in server | agent) ;; *) echo "$0: role must be server or agent, not '$role'" >&2; exit 2 ;; esac

# OUT_DIR/rootfs is the image's tree; OUT_DIR/writable (with a placeholder file: an artifact
# upload keeps files, not empty directories) becomes /tmp and /var/lib/assay, owned by assay.
rm -rf "$out"
mkdir -p "$out/rootfs" "$out/writable"
: >"$out/writable/.keep"
top=$out
out=$top/rootfs

# Copies FILE to the same path under OUT_DIR (following links).
put() {
  mkdir -p "$out$(dirname "$1")"
  cp -L "$1" "$out$1"
}
# A binary and every library the dynamic loader resolves for it, the loader included.
put_elf() {
  put "$1"
  ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
    while read -r lib; do
      [ -e "$out$lib" ] || put "$lib"
    done
}
install_bin() {  # SRC NAME: stripped into /usr/local/bin
  [ -x "$1" ] || { echo "$0: $1 is not built" >&2; exit 1; }
  put_elf "$1"
  mkdir -p "$out/usr/local/bin"
  mv "$out$1" "$out/usr/local/bin/$2"
  strip --strip-debug "$out/usr/local/bin/$2"
}

mkdir -p "$out/etc"
printf 'root:x:0:0:root:/root:/sbin/nologin\nassay:x:10001:10001:assay:/var/lib/assay:/sbin/nologin\n' >"$out/etc/passwd"
printf 'root:x:0:\nassay:x:10001:\n' >"$out/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$out/etc/hosts"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$out/etc/nsswitch.conf"
put /etc/ssl/certs/ca-certificates.crt

if [ "$role" = server ]; then
  install_bin "$build/server/assay-server" assay-server
  install_bin "$build/cli/assay" assay
  web=${WEB_DIST:-$root/web/dist}
  [ -f "$web/index.html" ] || { echo "$0: $web is not built (cd web && npm run build)" >&2; exit 1; }
  mkdir -p "$out/usr/local/share/assay"
  cp -R "$web" "$out/usr/local/share/assay/web"
else
  install_bin "$build/agent/assay-agent" assay-agent
  put_elf /usr/bin/git
  for helper in git-remote-http git-remote-https; do put_elf "/usr/lib/git-core/$helper"; done
  # Its applets (sh, ls, ...) are linked by the Containerfile's `busybox --install`: links do
  # not survive an artifact upload (docs/artifacts.md), and this tree is one.
  mkdir -p "$out/bin"
  cp /bin/busybox "$out/bin/busybox"
fi
echo "staged the $role image's root filesystem in $top ($(du -sh "$top" | cut -f1))"
