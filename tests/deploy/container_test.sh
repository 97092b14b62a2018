#!/usr/bin/env bash
# The container image (deploy/container/build.sh, issue 16): built from Debian packages with mmdebstrap and
# imported with podman under a tag of this run, then run with podman (runc; podman's default ulimits off,
# which this VM refuses) in the lab's load-balancer network namespace (the container's "host network"),
# /sys/fs/bpf and /run/xdp-pipeline from the host, the pipeline file mounted read-only, all capabilities
# dropped but a set. The test finds the smallest of the candidate sets with which the daemon attaches and
# checks it is the documented one (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON); with it, real traffic behaves:
# pings to the VIP answered alternately by the two backends, TCP 8080 dropped, 8081 passes.
# podman runs in the foreground of a process that dies with this test (setpriv --pdeathsig: its SIGTERM is
# proxied to the daemon, which detaches) and with --rm; images of earlier runs killed before their cleanup
# are removed first.
# Usage (root): container_test.sh XDP_PIPELINE_EXECUTABLE BUILD_DIR
XDPP=$(readlink -f "${1:?usage: $0 XDP_PIPELINE_EXECUTABLE BUILD_DIR}")
BUILD=$(readlink -f "${2:?usage: $0 XDP_PIPELINE_EXECUTABLE BUILD_DIR}")
source "$(dirname "$(readlink -f "$0")")/../live/common.sh"
live_require
for t in podman runc mmdebstrap; do command -v "$t" >/dev/null || skip "'$t' not found (scripts/install-deps.sh installs podman, runc, mmdebstrap)"; done

TAG=localhost/xdpp-test-$$:latest
CTR=xdpp-ct-$$
CONF=$(mktemp /tmp/xdpp-containers.XXXXXX.conf)
# crun (podman's default here) fails on this VM's hybrid cgroups and on setrlimit; runc works once podman's
# default ulimits are off.
printf '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n' >"$CONF"
export CONTAINERS_CONF=$CONF
pm() { podman --runtime runc "$@"; }
PODMAN_PID=
container_cleanup() {
  pm rm -f "$CTR" >/dev/null 2>&1
  [[ -n $PODMAN_PID ]] && wait "$PODMAN_PID" 2>/dev/null
  pm rmi -f "$TAG" >/dev/null 2>&1
  rm -f "$CONF"
}
# Images and containers of earlier runs of this test that were killed before their cleanup.
for old in $(pm images --format '{{.Repository}}' 2>/dev/null | sed -n 's|^localhost/xdpp-test-\([0-9]*\)$|\1|p'); do
  if ! kill -0 "$old" 2>/dev/null; then
    pm rm -f "xdpp-ct-$old" >/dev/null 2>&1
    pm rmi -f "localhost/xdpp-test-$old:latest" >/dev/null 2>&1
  fi
done
live_setup lvct
trap 'rc=$?; container_cleanup; (exit $rc); live_cleanup' EXIT

"$LIVE_SOURCE_DIR/deploy/container/build.sh" "$BUILD" --tag "$TAG" --rootfs "$T/rootfs1.tar" >"$T/build.log" 2>&1 ||
  fail "deploy/container/build.sh failed: $(tail -n 5 "$T/build.log")"
# Reproducible: a second build gives the same root filesystem, byte for byte.
"$LIVE_SOURCE_DIR/deploy/container/build.sh" "$BUILD" --tag "$TAG" --rootfs "$T/rootfs2.tar" >"$T/build2.log" 2>&1 ||
  fail "the second build failed: $(tail -n 5 "$T/build2.log")"
sum1=$(sha256sum <"$T/rootfs1.tar") sum2=$(sha256sum <"$T/rootfs2.tar")
[[ $sum1 == "$sum2" ]] || fail "two builds gave different root filesystems: $(diff <(tar tvf "$T/rootfs1.tar") <(tar tvf "$T/rootfs2.tar") | head -n 5)"
tar tf "$T/rootfs1.tar" | grep -qx './usr/local/bin/xdp-pipeline' || fail "the image has no /usr/local/bin/xdp-pipeline"
! tar tf "$T/rootfs1.tar" | grep -qE '^\./(usr/)?bin/(sh|bash|apt)$' || fail "the image has a shell or apt"
ok "two builds, one root filesystem (sha256 ${sum1:0:16}...); no shell, no apt"
version=$(sed -n 's/^project(xdp-pipeline VERSION \([0-9.]*\).*/\1/p' "$LIVE_SOURCE_DIR/CMakeLists.txt")
[[ $(pm image inspect "$TAG" --format '{{index .Labels "org.opencontainers.image.version"}}') == "$version" ]] ||
  fail "the image is not labelled with version $version"
size=$(pm image inspect "$TAG" --format '{{.Size}}')
pm run --rm --network none "$TAG" --help >/dev/null 2>&1 || true
ok "image $TAG built from Debian packages ($((size / 1024 / 1024)) MiB), version label $version; $(grep 'runtime packages' "$T/build.log" | cut -c1-120)..."

mkdir -p "$T/etc"
write_pipeline "$T/etc/pipeline.toml" "parse no-8080 ping-lb"
chmod 0755 "$T" "$T/etc"
chmod 0644 "$T/etc/pipeline.toml"
# run_with CAPS: the daemon in a container with only CAPS, its output in $T/ctr-CAPS.log; 0 once it says it
# is attached.
run_with() {
  CTR_LOG=$T/ctr-$1.log
  # seccomp unconfined, as the DaemonSet: podman's default profile on Debian 12 allows bpf() only with
  # CAP_SYS_ADMIN.
  setpriv --pdeathsig TERM podman --runtime runc run --rm --name "$CTR" --network "ns:/run/netns/$LAB_NS_LB" \
    --cap-drop ALL --cap-add "$1" --security-opt seccomp=unconfined \
    -v /sys/fs/bpf:/sys/fs/bpf -v /run/xdp-pipeline:/run/xdp-pipeline -v "$T/etc:/etc/xdp-pipeline:ro" \
    "$TAG" run /etc/xdp-pipeline/pipeline.toml --interface "$LAB_IF_LB" --mode native >"$CTR_LOG" 2>&1 &
  PODMAN_PID=$!
  for _ in $(seq 150); do
    grep -q "attached to $LAB_IF_LB" "$CTR_LOG" && return 0
    kill -0 "$PODMAN_PID" 2>/dev/null || break
    sleep 0.1
  done
  pm rm -f "$CTR" >/dev/null 2>&1
  wait "$PODMAN_PID" 2>/dev/null
  PODMAN_PID=
  return 1
}
minimal=
for caps in BPF,NET_ADMIN BPF,NET_ADMIN,PERFMON BPF,NET_ADMIN,PERFMON,SYS_ADMIN; do
  if run_with "$caps"; then minimal=$caps; break; fi
  note "with $caps only: $(grep -m1 -i 'error' "$T/ctr-$caps.log" || tail -n 1 "$T/ctr-$caps.log")"
done
[[ -n $minimal ]] || fail "the containerised daemon did not attach even with BPF,NET_ADMIN,PERFMON,SYS_ADMIN"
[[ $minimal == BPF,NET_ADMIN,PERFMON ]] || fail "the smallest working set is $minimal; docs/deploy.md and the manifests say BPF,NET_ADMIN,PERFMON"
ok "containerised daemon attached with --cap-drop ALL --cap-add $minimal --security-opt seccomp=unconfined (the smaller set failed)"

: >"$T/sources.txt"
read -r s r < <(ping_chunk 20 "$T/sources.txt")
((s == 20 && r == 20)) || fail "$r of $s pings answered through the containerised pipeline"
assert_alternating "$T/sources.txt" "pings through the container"
refused=$(tcp_syns 5 8080)
((refused == 0)) || fail "8080 should be dropped: $refused of 5 SYNs reached the lb"
refused=$(tcp_syns 5 8081)
((refused == 5)) || fail "8081 should pass: $refused of 5"
ok "through the container: 20 pings answered alternately by $LAB_IP_BE1 and $LAB_IP_BE2; TCP 8080 dropped, 8081 passes"
pm stop -t 10 "$CTR" >/dev/null
wait "$PODMAN_PID" 2>/dev/null
PODMAN_PID=
grep -q "detached from $LAB_IF_LB" "$CTR_LOG" || fail "podman stop did not detach cleanly: $(tail -n 3 "$CTR_LOG")"
ok "podman stop: SIGTERM, detached"
echo PASS
