#!/usr/bin/env bash
# The systemd service (deploy/systemd, issue 16):
#   - the unit as configured for installation passes `systemd-analyze verify` with no message at all
#     (ExecStart pointed at this build's executable, since the installed one is not there);
#   - readiness by systemd's notify protocol, with a socket this test listens on in place of systemd
#     (systemd is not PID 1 on these machines): READY=1 arrives only once the pipeline is attached (the
#     listener checks the interface at that moment), SIGHUP (ExecReload) gives RELOADING=1 then READY=1,
#     SIGTERM gives STOPPING=1 and a clean exit;
#   - the install rule puts the unit under PREFIX/lib/systemd/system with ExecStart at PREFIX/bin.
# The daemon and the listener die with this test (setpriv --pdeathsig), also when it is killed.
# Usage (root): systemd_test.sh XDP_PIPELINE_EXECUTABLE BUILD_DIR
XDPP=$(readlink -f "${1:?usage: $0 XDP_PIPELINE_EXECUTABLE BUILD_DIR}")
BUILD=$(readlink -f "${2:?usage: $0 XDP_PIPELINE_EXECUTABLE BUILD_DIR}")
source "$(dirname "$(readlink -f "$0")")/../live/common.sh"
[[ $(id -u) -eq 0 ]] || skip "needs root (network namespace, XDP)"
command -v systemd-analyze >/dev/null || skip "systemd-analyze not found"
[[ -x /usr/bin/python3 ]] || skip "/usr/bin/python3 not found"

T=$(mktemp -d /tmp/xdpp-systemd.XXXXXX)
NS=xps$$-ns IF=xps$$a
PIPELINE_NAME=sdtest-$$
PIPELINE_PID= LISTENER=
cleanup() {
  local rc=$?
  set +e
  [[ -n $PIPELINE_PID ]] && kill -INT "$PIPELINE_PID" 2>/dev/null && wait "$PIPELINE_PID" 2>/dev/null
  [[ -n $LISTENER ]] && kill "$LISTENER" 2>/dev/null && wait "$LISTENER" 2>/dev/null
  ip netns del "$NS" 2>/dev/null
  rm -rf "/sys/fs/bpf/xdp-pipeline/$PIPELINE_NAME" /run/xdp-pipeline/"$PIPELINE_NAME".* "$T"
  rmdir /sys/fs/bpf/xdp-pipeline 2>/dev/null
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- systemd-analyze verify ------------------------------------------------------------------------------
unit=$BUILD/deploy/systemd/xdp-pipeline@.service
[[ -f $unit ]] || fail "the configured unit $unit is missing"
mkdir -p "$T/units"
installed_bin=$(sed -n 's|^ExecStart=\(.*\)/xdp-pipeline run .*|\1|p' "$unit")
sed "s|$installed_bin/xdp-pipeline|$XDPP|g" "$unit" >"$T/units/xdp-pipeline@ci.service"
out=$(cd "$T/units" && systemd-analyze verify --man=no ./xdp-pipeline@ci.service 2>&1) || fail "systemd-analyze verify failed: $out"
[[ -z $out ]] || fail "systemd-analyze verify has something to say: $out"
for line in Type=notify 'ExecReload=/bin/kill -HUP $MAINPID' Restart=on-failure \
  'AmbientCapabilities=CAP_BPF CAP_NET_ADMIN CAP_PERFMON' 'CapabilityBoundingSet=CAP_BPF CAP_NET_ADMIN CAP_PERFMON'; do
  grep -qxF "$line" "$unit" || fail "the unit lacks '$line'"
done
ok "systemd-analyze verify: no message; Type=notify, ExecReload SIGHUP, Restart=on-failure, capabilities"

# --- the install rule -----------------------------------------------------------------------------------
DESTDIR=$T/dest cmake --install "$BUILD" --prefix /opt/xdpp-ci >/dev/null || fail "cmake --install failed"
inst=$T/dest/opt/xdpp-ci/lib/systemd/system/xdp-pipeline@.service
[[ -f $inst ]] || fail "cmake --install did not install the unit under PREFIX/lib/systemd/system"
grep -qx 'ExecStart=/opt/xdpp-ci/bin/xdp-pipeline run /etc/xdp-pipeline/%i.toml' "$inst" ||
  fail "the installed unit does not start PREFIX/bin/xdp-pipeline: $(grep ExecStart= "$inst")"
ok "cmake --install puts the unit in PREFIX/lib/systemd/system with ExecStart=PREFIX/bin/xdp-pipeline"

# --- readiness through NOTIFY_SOCKET ----------------------------------------------------------------------
ip netns add "$NS"
ip link add "$IF" netns "$NS" type veth peer name "${IF}p" netns "$NS"
ip -n "$NS" link set "$IF" up
ip -n "$NS" link set "${IF}p" up
printf '[pipeline]\nname = "%s"\ninterface = "%s"\nmode = "native"\n\n[[stage]]\nname = "parse"\nplugin = "parse"\n' \
  "$PIPELINE_NAME" "$IF" >"$T/p.toml"
# The listener: one line per datagram; at READY=1 it records whether the interface has an XDP program.
setpriv --pdeathsig TERM /usr/bin/python3 - "$T/notify" "$NS" "$IF" >"$T/notify.log" 2>&1 <<'PY' &
import socket, subprocess, sys
path, ns, ifname = sys.argv[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
print("listening", flush=True)
while True:
    message = s.recv(4096).decode()
    attached = ""
    if "READY=1" in message:
        link = subprocess.run(["ip", "-n", ns, "link", "show", ifname], capture_output=True, text=True).stdout
        attached = " [xdp attached]" if "prog/xdp" in link else " [xdp NOT attached]"
    print(message.replace("\n", "|") + attached, flush=True)
    if "STOPPING=1" in message:
        break
PY
LISTENER=$!
for _ in $(seq 50); do [[ -S $T/notify ]] && break; sleep 0.1; done
[[ -S $T/notify ]] || fail "the notify listener did not start: $(cat "$T/notify.log")"
PIPELINE_LOG=$T/run.log
NOTIFY_SOCKET=$T/notify setpriv --pdeathsig INT "$XDPP" run "$T/p.toml" --netns "$NS" >/dev/null 2>"$PIPELINE_LOG" &
PIPELINE_PID=$!
for _ in $(seq 100); do grep -q READY=1 "$T/notify.log" && break; sleep 0.1; done
grep -q '^READY=1|STATUS=attached to '"$IF"' \[xdp attached\]$' "$T/notify.log" ||
  fail "no READY=1 once attached: $(cat "$T/notify.log")"
ok "READY=1 (STATUS=attached to $IF) sent once the dispatcher was on the interface"
kill -HUP "$PIPELINE_PID"
for _ in $(seq 50); do (($(grep -c READY=1 "$T/notify.log") >= 2)) && break; sleep 0.1; done
grep -q '^RELOADING=1$' "$T/notify.log" && (($(grep -c READY=1 "$T/notify.log") == 2)) ||
  fail "SIGHUP did not give RELOADING=1 then READY=1: $(cat "$T/notify.log")"
kill -TERM "$PIPELINE_PID"
rc=0
wait "$PIPELINE_PID" || rc=$?
PIPELINE_PID=
((rc == 0)) || fail "run exited $rc on SIGTERM"
wait "$LISTENER" 2>/dev/null || true
LISTENER=
grep -q '^STOPPING=1$' "$T/notify.log" || fail "no STOPPING=1: $(cat "$T/notify.log")"
ip -n "$NS" link show "$IF" | grep -q prog/xdp && fail "still attached after SIGTERM"
ok "SIGHUP: RELOADING=1 then READY=1; SIGTERM: STOPPING=1, exit 0, detached"
echo PASS
