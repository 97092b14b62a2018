#!/usr/bin/env bash
# deploy/kubernetes against the Kubernetes API schema (issue 16): every object of the base and of each
# overlay, rendered as kustomize would, validated with kubernetes-models (npm; Debian packages no
# validator of Kubernetes objects) and the Prometheus Operator's ServiceMonitor schema; a deliberately
# broken copy (a container port that is a string) must be refused, so the validator is
# known to bite; each ConfigMap's pipeline file passes `xdp-pipeline check`.
# Usage: manifests_test.sh XDP_PIPELINE_EXECUTABLE
XDPP=$(readlink -f "${1:?usage: $0 XDP_PIPELINE_EXECUTABLE}")
here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
root=$(cd "$here/../.." && pwd)
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v node >/dev/null || skip "node not found"
[[ -d $here/node_modules/kubernetes-models ]] || skip "kubernetes-models not installed (scripts/install-deps.sh: npm ci in tests/deploy)"
T=$(mktemp -d /tmp/xdpp-manifests.XXXXXX)
trap 'rm -rf "$T"' EXIT

node "$here/validate_manifests.mjs" "$root/deploy/kubernetes" "$T/files" >"$T/out.txt" 2>&1 || fail "invalid manifests: $(grep -v '^ok' "$T/out.txt")"
cat "$T/out.txt"
grep -q '^ok overlays/two-nics DaemonSet/xdp-pipeline-two-nics$' "$T/out.txt" || fail "the two-nics overlay was not rendered"
grep -q '^ok base ServiceMonitor/xdp-pipeline$' "$T/out.txt" || fail "the ServiceMonitor was not validated"

# The validator must refuse a broken copy.
cp -r "$root/deploy/kubernetes" "$T/broken"
sed -i 's/              containerPort: 9100/              containerPort: "9100"/; /          image: /d' "$T/broken/base/daemonset.yaml"
if node "$here/validate_manifests.mjs" "$T/broken" "$T/files-broken" >"$T/broken.txt" 2>&1; then fail "a broken DaemonSet was accepted"; fi
grep -q "containerPort must be integer" "$T/broken.txt" || fail "the string port was not reported: $(cat "$T/broken.txt")"
echo "ok: a DaemonSet with a string port is refused ($(grep -m1 FAIL "$T/broken.txt"))"

# Each pipeline file of a ConfigMap.
for f in "$T"/files/*; do
  out=$("$XDPP" check "$f" 2>&1) || fail "${f##*/}: $out"
  echo "ok: check ${f##*/}: $out"
done
echo PASS
