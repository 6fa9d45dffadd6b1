#!/usr/bin/env bash
# Validates the deployment files offline: deploy/k8s, deploy/systemd, deploy/prometheus,
# deploy/grafana and deploy/container. No network, no cluster, no running systemd; every
# command is bounded by `timeout`. Prints `ok` or `FAIL` per check (with the failing
# command's output), then "N passed, M failed"; exits 1 when anything failed.
#
# Needs (Debian 12 packages): prometheus (promtool), systemd (systemd-analyze),
# kubernetes-client (kubectl: `kubectl kustomize`), python3, python3-yaml and python3-kubernetes
# (the schema check), coreutils.
# What each check does and does not validate: docs/operations.md#validating-the-deployment-files.
#
# Environment: PROMTOOL (default /usr/bin/promtool, else promtool on PATH), PROMTOOL_WAIT
# (seconds to wait for promtool to appear while the package is being installed, default 120),
# KUBECTL (default kubectl), PYTHON (default: the first python3 that imports yaml).
set -u
cd "$(dirname "$0")/.." || exit 2
root=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

# check NAME COMMAND...: runs the command with its output captured; ok when it exits 0.
check() {
  local name=$1
  shift
  if "$@" >"$work/out" 2>&1; then
    echo "ok   $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name"
    sed 's/^/     /' "$work/out" | head -n 60
    failed=$((failed + 1))
  fi
}

# missing NAME WHY: a check that could not run counts as failed.
missing() {
  echo "FAIL $1"
  echo "     $2"
  failed=$((failed + 1))
}

# --- tools -----------------------------------------------------------------------------------
promtool=${PROMTOOL:-}
if [ -z "$promtool" ]; then
  # The package may be being installed by another process: wait for it, boundedly.
  deadline=$((SECONDS + ${PROMTOOL_WAIT:-120}))
  while :; do
    if [ -x /usr/bin/promtool ]; then promtool=/usr/bin/promtool; break; fi
    if command -v promtool >/dev/null 2>&1; then promtool=$(command -v promtool); break; fi
    [ "$SECONDS" -ge "$deadline" ] && break
    echo "waiting for promtool (Debian package prometheus) ..." >&2
    sleep 5
  done
fi
kubectl=${KUBECTL:-kubectl}
python=${PYTHON:-}
if [ -z "$python" ]; then
  for p in /usr/bin/python3 python3; do
    if timeout 20 "$p" -c 'import yaml' >/dev/null 2>&1; then python=$p; break; fi
  done
fi
# kubectl must never reach a cluster from here: kustomize needs none.
export KUBECONFIG=/dev/null

# --- Prometheus rules, their tests, the example config --------------------------------------
if [ -n "$promtool" ] && [ -x "$promtool" ]; then
  check "promtool check rules deploy/prometheus/assay-rules.yml" \
    timeout 60 "$promtool" check rules deploy/prometheus/assay-rules.yml
  check "promtool test rules deploy/prometheus/assay-rules.test.yml" \
    bash -c "cd deploy/prometheus && timeout 120 '$promtool' test rules assay-rules.test.yml"
  # Why a copy: `check config` also opens the files the config names (rule files, the bearer
  # token file). The copy points credentials_file at an empty file that exists; everything
  # else, the rule file included, is checked as written.
  mkdir -p "$work/prom"
  cp deploy/prometheus/assay-rules.yml "$work/prom/"
  : >"$work/prom/token"
  sed "s#credentials_file: .*#credentials_file: $work/prom/token#" \
    deploy/prometheus/prometheus.yml >"$work/prom/prometheus.yml"
  check "promtool check config deploy/prometheus/prometheus.yml" \
    timeout 60 "$promtool" check config "$work/prom/prometheus.yml"
else
  missing "promtool" "promtool not found (install the Debian package prometheus, or set PROMTOOL)"
fi

# --- metric names and the Grafana dashboard -------------------------------------------------
if [ -n "$python" ]; then
  check "metric names in the rules and dashboard exist; dashboard JSON and shape" \
    timeout 60 "$python" deploy/prometheus/check_names.py "$root" \
    deploy/prometheus/assay-rules.yml deploy/grafana/assay-dashboard.json
else
  missing "metric names and dashboard" "no python3 with PyYAML (Debian: python3-yaml)"
fi

# --- systemd units -------------------------------------------------------------------------
# systemd-analyze verify needs no running systemd (this works in a container), but fails a
# unit whose ExecStart= binary does not exist, and the binaries are not installed here. The
# units are verified as copies whose ExecStart= runs /bin/true with the same arguments.
# verify exits 0 on unknown keys and bad values (it only logs them), so any output fails.
if command -v systemd-analyze >/dev/null 2>&1; then
  mkdir -p "$work/units"
  for unit in deploy/systemd/*.service; do
    sed -E 's#^(ExecStart=)/[^ ]*/assay-(server|agent)( |$)#\1/bin/true\3#' "$unit" \
      >"$work/units/$(basename "$unit")"
  done
  verify_units() {
    local out
    out=$(cd "$work/units" && timeout 60 systemd-analyze verify --man=no ./*.service 2>&1)
    local rc=$?
    [ -n "$out" ] && echo "$out"
    [ $rc -eq 0 ] && [ -z "$out" ]
  }
  check "systemd-analyze verify deploy/systemd/*.service" verify_units
  if ! grep -q '^ExecStart=/bin/true' "$work/units/assay-server.service" ||
    ! grep -q '^ExecStart=/bin/true' "$work/units/assay-agent.service"; then
    missing "systemd ExecStart rewrite" "an ExecStart= line no longer names /…/assay-server or /…/assay-agent"
  fi
else
  missing "systemd-analyze verify" "systemd-analyze not found (Debian package systemd)"
fi
if [ -n "$python" ]; then
  check "options in deploy/systemd exist (assay-server --help)" \
    timeout 60 "$python" deploy/k8s/validate.py options "$root" assay-server \
    deploy/systemd/assay-server.service deploy/systemd/assay-server.env.example
  check "options in deploy/systemd exist (assay-agent --help)" \
    timeout 60 "$python" deploy/k8s/validate.py options "$root" assay-agent \
    deploy/systemd/assay-agent.service deploy/systemd/assay-agent.env.example
fi

# --- Kubernetes -----------------------------------------------------------------------------
# `kubectl apply/create --dry-run=client` cannot run here: even a client dry run asks an API
# server for its resource list and OpenAPI schema (kubectl 1.20 and 1.32 alike). Instead each
# kustomization is rendered with `kubectl kustomize` and its output checked by validate.py:
# structurally (`manifests`), then field by field against the Kubernetes API schema as the
# official Python client models it (`schema`; Debian's python3-kubernetes).
if command -v "$kubectl" >/dev/null 2>&1; then
  for dir in deploy/k8s/base deploy/k8s/overlays/*/; do
    dir=${dir%/}
    render_and_validate() {
      timeout 60 "$kubectl" kustomize "$1" >"$work/rendered.yaml" 2>"$work/kustomize.err" || {
        cat "$work/kustomize.err"
        return 1
      }
      [ -n "$python" ] || { echo "no python3 with PyYAML: rendered, not validated"; return 1; }
      timeout 60 "$python" deploy/k8s/validate.py manifests "$root" "$1" <"$work/rendered.yaml" &&
        timeout 60 "$python" deploy/k8s/validate.py schema "$1" <"$work/rendered.yaml"
    }
    check "kubectl kustomize $dir + structural and schema validation" render_and_validate "$dir"
  done
else
  missing "kubectl kustomize" "kubectl not found (Debian package kubernetes-client, or set KUBECTL)"
fi

# --- Containerfiles (not built: no registry to pull debian:12 from) --------------------------
containerfiles() {
  local bad=0 f src pkg pkgs
  for f in deploy/container/Containerfile.server deploy/container/Containerfile.agent; do
    # Every COPY source from the build context exists.
    while read -r src; do
      [ -e "$src" ] || { echo "$f: COPY source $src does not exist"; bad=1; }
    done < <(grep -E '^COPY ' "$f" | grep -v -- '--from=' | awk '{for (i = 2; i < NF; i++) print $i}')
    # Every package the runtime stage installs is known to apt (when apt has package lists).
    if [ -n "$(find /var/lib/apt/lists -name '*Packages*' -print -quit 2>/dev/null)" ]; then
      pkgs=$(awk '/^FROM .*debian:12-slim/{rt=1} rt && /install -y/{p=1; next} p && /^ *&&/{p=0} p {print}' "$f" |
        tr -d '\\&' | tr ' ' '\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$')
      [ -n "$pkgs" ] || { echo "$f: found no runtime packages to check"; bad=1; }
      # One apt-cache call (each takes a second or so): a package it knows has a Candidate.
      timeout 60 apt-cache policy $pkgs >"$work/policy" 2>/dev/null
      for pkg in $pkgs; do
        awk -v p="$pkg:" '$1 == p {getline; if ($1 == "Installed:") getline; ok = ($2 != "(none)")} END {exit !ok}' \
          "$work/policy" || { echo "$f: no Debian package $pkg"; bad=1; }
      done
    else
      echo "(no apt package lists: package names not checked)"
    fi
  done
  return $bad
}
check "Containerfiles: COPY sources exist, runtime packages are Debian 12 packages" containerfiles

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
