#!/usr/bin/env python3
"""chain_replay.py XDP_PIPELINE PIPELINE PCAP: replays packets through parse -> udp_watch -> syn_guard
(udp_watch drops UDP to 5353; syn_guard allows 1 SYN/s per source, burst 2) and checks which stage
decided what, the events and the summary. Writes PCAP first. Standard library only."""
import ipaddress
import json
import struct
import subprocess
import sys


def ip_checksum(header):
    total = sum(struct.unpack("!%dH" % (len(header) // 2), header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4(src, dst, proto, payload):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                         ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    header = header[:10] + struct.pack("!H", ip_checksum(header)) + header[12:]
    return bytes.fromhex("020000000002020000000001") + b"\x08\x00" + header + payload


def udp(dport):
    return struct.pack("!HHHH", 40000, dport, 8, 0)


def tcp(flags, dport=80):
    return struct.pack("!HHIIBBHHH", 40000, dport, 1, 0, 5 << 4, flags, 65535, 0, 0)


SYN, ACK = 0x02, 0x10
# (what, frame, verdict, stage that decided, number of events)
CASES = [
    ("UDP to 5353: udp_watch drops", ipv4("10.1.0.1", "10.1.0.2", 17, udp(5353)), "drop", "udp_watch", 0),
    ("UDP to 53 goes through both", ipv4("10.1.0.1", "10.1.0.2", 17, udp(53)), "pass", "syn_guard", 0),
    ("SYN 1 from 10.1.0.9", ipv4("10.1.0.9", "10.1.0.2", 6, tcp(SYN)), "pass", "syn_guard", 0),
    ("SYN 2 from 10.1.0.9", ipv4("10.1.0.9", "10.1.0.2", 6, tcp(SYN)), "pass", "syn_guard", 0),
    ("SYN 3 from 10.1.0.9: over the limit", ipv4("10.1.0.9", "10.1.0.2", 6, tcp(SYN)), "drop", "syn_guard", 1),
    ("ACK from 10.1.0.9 still passes", ipv4("10.1.0.9", "10.1.0.2", 6, tcp(ACK)), "pass", "syn_guard", 0),
    ("SYN from 10.1.0.10", ipv4("10.1.0.10", "10.1.0.2", 6, tcp(SYN)), "pass", "syn_guard", 0),
]


def main():
    xdpp, pipeline, pcap = sys.argv[1:4]
    with open(pcap, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for index, (_, frame, _, _, _) in enumerate(CASES):
            frame = frame + bytes(max(0, 60 - len(frame)))
            out.write(struct.pack("<IIII", 1700000000 + index, 0, len(frame), len(frame)) + frame)
    run = subprocess.run([xdpp, "replay", pipeline, "--pcap", pcap, "--json"], capture_output=True, text=True)
    if run.returncode != 0:
        print(run.stdout + run.stderr)
        print("FAIL: replay exited with %d" % run.returncode)
        return 1
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    packets = [line for line in lines if "packet" in line]
    summary = next((line["summary"] for line in lines if "summary" in line), {})
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
