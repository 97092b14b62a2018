#!/usr/bin/env python3
"""syn_guard's test: replays SYN bursts from IPv4 and IPv6 sources through parse + syn_guard with
`xdp-pipeline replay --json` and checks every verdict and event.

Thresholds from test/pipeline.toml.in: 1 SYN/s, burst 3, IPv6 per /64. The refill (one SYN per second)
is far slower than the replay, so the outcome does not depend on timing. Needs root for
BPF_PROG_TEST_RUN; exits 77 (skipped) otherwise. Frames and replay come from the SDK's xdpp_replay.
"""
import os
import sys

from xdpp_replay import ACK, SYN, ipv4, ipv6, replay, tcp, test_arguments, udp


def syn4(src):
    return ipv4(src, "192.0.2.80", 6, tcp(40000, 80, SYN))


def syn6(src):
    return ipv6(src, "2001:db8:ffff::80", 6, tcp(40000, 80, SYN))


# (what, frame, verdict, deciding stage, event text or None)
CASES = [
    ("10.0.0.1 SYN 1 (burst)", syn4("10.0.0.1"), "pass", "syn_guard", None),
    ("10.0.0.1 SYN 2 (burst)", syn4("10.0.0.1"), "pass", "syn_guard", None),
    ("10.0.0.1 SYN 3 (burst)", syn4("10.0.0.1"), "pass", "syn_guard", None),
    ("10.0.0.1 SYN 4: over", syn4("10.0.0.1"), "drop", "syn_guard", "syn_guard: 10.0.0.1 over 1 SYN/s, dropping"),
    ("10.0.0.1 SYN 5: still over, no second event", syn4("10.0.0.1"), "drop", "syn_guard", None),
    ("10.0.0.1 SYN-ACK is not a connection attempt", ipv4("10.0.0.1", "192.0.2.80", 6, tcp(40000, 80, SYN | ACK)), "pass",
     "syn_guard", None),
    ("10.0.0.1 ACK of an admitted handshake", ipv4("10.0.0.1", "192.0.2.80", 6, tcp(40000, 80, ACK)), "pass", "syn_guard", None),
    ("10.0.0.1 UDP", ipv4("10.0.0.1", "192.0.2.80", 17, udp(40000, 53)), "pass", "syn_guard", None),
    ("10.0.0.2 SYN: another source", syn4("10.0.0.2"), "pass", "syn_guard", None),
    ("2001:db8:1::1 SYN", syn6("2001:db8:1::1"), "pass", "syn_guard", None),
    ("2001:db8:1::2 SYN, same /64", syn6("2001:db8:1::2"), "pass", "syn_guard", None),
    ("2001:db8:1::3 SYN, same /64", syn6("2001:db8:1::3"), "pass", "syn_guard", None),
    ("2001:db8:1::ffff SYN, same /64: over", syn6("2001:db8:1::ffff"), "drop", "syn_guard",
     "syn_guard: 2001:db8:1::/64 over 1 SYN/s, dropping"),
    ("2001:db8:2::1 SYN: another /64", syn6("2001:db8:2::1"), "pass", "syn_guard", None),
]


def main():
    args = test_arguments()
    if args is None:
        return 77
    pcap = os.path.join(args.work_dir, "syn_guard_test.pcap")
    packets, summary = replay(args.xdp_pipeline, args.pipeline, [case[1] for case in CASES], pcap)
    if packets is None:
        return 1

    failures = 0
    for index, (what, _, verdict, stage, event) in enumerate(CASES):
        got = packets[index] if index < len(packets) else {}
        texts = [e.get("source") for e in got.get("events", [])]
        events = got.get("events", [])
        want_events = 1 if event else 0
        ok = got.get("verdict") == verdict and got.get("stage") == stage and len(events) == want_events
        if ok and event:
            source = event.split(": ", 1)[1].split(" over")[0]
            ok = (events[0].get("stage") == "syn_guard" and events[0].get("source") == source
                  and events[0].get("first") is True and events[0].get("dropped") == 1
                  and events[0].get("syn_per_second") == 1)
        print("%s  #%d %s: %s by %s, events %s" % ("ok  " if ok else "FAIL", index, what, got.get("verdict"),
                                                 got.get("stage"), texts))
        failures += not ok
    drops = sum(1 for case in CASES if case[2] == "drop")
    if summary.get("verdicts", {}).get("drop") != drops or summary.get("packets") != len(CASES):
        print("FAIL: summary %s, expected %d packets and %d drops" % (summary, len(CASES), drops))
        failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
