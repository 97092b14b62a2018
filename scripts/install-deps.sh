#!/usr/bin/env bash
# Installs everything xdp-pipeline needs to build, test and run its demo on Debian 12, from Debian
# packages only. Idempotent: skips apt entirely when every package is already present.
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ pkg-config clang llvm libbpf-dev bpftool linux-libc-dev
  libboost-dev libboost-program-options-dev libtomlplusplus-dev
  libgtest-dev googletest libpcap-dev nlohmann-json3-dev prometheus-cpp-dev
  libssl-dev  # SHA-256 of the BPF objects a persisted pipeline runs (checked when the next run adopts it)
  libcivetweb-dev  # the /healthz and /readyz probes, answered in the hook of prometheus-cpp's civetweb server
  libsystemd-dev   # sd_notify(): readiness of a Type=notify service (deploy/systemd); a no-op outside systemd
  # runtime and end-to-end tests
  iproute2 iputils-ping netcat-openbsd socat tcpdump tshark hping3 procps
  util-linux bridge-utils curl jq python3-scapy
  # deployment (issue 16): systemd-analyze for the unit, the container image (mmdebstrap) and its runtime
  # (podman with runc, see docs/deploy.md), a real Prometheus for the scrape test, node for the manifest
  # validator
  systemd mmdebstrap podman runc uidmap prometheus nodejs
)

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: must run as root (apt-get install)" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # tshark asks whether non-root users may capture; the answer is no.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

# Test-only, from npm: the Kubernetes API schema for validating deploy/kubernetes (kubernetes-models and
# the Prometheus Operator's models). Debian packages no validator that checks Kubernetes objects' fields
# and types (python3-kubernetes deserialises without validating). Pinned by tests/deploy/package-lock.json.
here=$(cd "$(dirname "$0")/.." && pwd)
if [[ ! -d $here/tests/deploy/node_modules/kubernetes-models ]]; then
  command -v npm >/dev/null || apt-get install -y -qq --no-install-recommends npm
  npm ci --prefix "$here/tests/deploy" --no-audit --no-fund --loglevel=error
fi
