#!/usr/bin/env python3
"""chain_replay.py XDP_PIPELINE PIPELINE PCAP: replays packets through parse -> udp_watch -> syn_guard
(udp_watch drops UDP to 5353; syn_guard allows 1 SYN/s per source, burst 2) and checks which stage
decided what, the events and the summary. Writes PCAP first. Uses the installed SDK's xdpp_replay."""
import sys

from xdpp_replay import ACK, SYN, ipv4, replay, tcp, udp

# (what, frame, verdict, stage that decided, number of events)
CASES = [
    ("UDP to 5353: udp_watch drops", ipv4("10.1.0.1", "10.1.0.2", 17, udp(40000, 5353)), "drop", "udp_watch", 0),
    ("UDP to 53 goes through both", ipv4("10.1.0.1", "10.1.0.2", 17, udp(40000, 53)), "pass", "syn_guard", 0),
    ("SYN 1 from 10.1.0.9", ipv4("10.1.0.9", "10.1.0.2", 6, tcp(40000, 80, SYN)), "pass", "syn_guard", 0),
    ("SYN 2 from 10.1.0.9", ipv4("10.1.0.9", "10.1.0.2", 6, tcp(40000, 80, SYN)), "pass", "syn_guard", 0),
    ("SYN 3 from 10.1.0.9: over the limit", ipv4("10.1.0.9", "10.1.0.2", 6, tcp(40000, 80, SYN)), "drop", "syn_guard", 1),
    ("ACK from 10.1.0.9 still passes", ipv4("10.1.0.9", "10.1.0.2", 6, tcp(40000, 80, ACK)), "pass", "syn_guard", 0),
    ("SYN from 10.1.0.10", ipv4("10.1.0.10", "10.1.0.2", 6, tcp(40000, 80, SYN)), "pass", "syn_guard", 0),
]


def main():
    xdpp, pipeline, pcap = sys.argv[1:4]
    packets, summary = replay(xdpp, pipeline, [case[1] for case in CASES], pcap)
    if packets is None:
        return 1
    failures = 0
    for index, (what, _, verdict, stage, events) in enumerate(CASES):
        got = packets[index] if index < len(packets) else {}
        ok = (got.get("verdict"), got.get("stage"), len(got.get("events", []))) == (verdict, stage, events)
        if ok and events:
            event = got["events"][0]
            ok = event.get("stage") == "syn_guard" and event.get("source") == "10.1.0.9" and event.get("first") is True
        print("%s  #%d %s: %s by %s" % ("ok  " if ok else "FAIL", index, what, got.get("verdict"), got.get("stage")))
        failures += not ok
    expected = {"udp_watch": {"drop": 1}, "syn_guard": {"pass": 5, "drop": 1}}
    if summary.get("packets") != len(CASES) or summary.get("stages") != expected:
        print("FAIL: summary %s, expected stages %s" % (summary, expected))
        failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
