"""Helpers for testing a stage with `xdp-pipeline replay`: crafted frames, a pcap of them, and the replay's
JSON read back. Installed with the SDK (XdpPipeline's XDPP_PYTHON_DIR); standard library only.

    args = test_arguments()          # --xdp-pipeline, --pipeline, --work-dir; None: not root, skip (77)
    frames = [ipv4("10.0.0.1", "10.0.0.2", 17, udp(40000, 53))]
    packets, summary = replay(args.xdp_pipeline, args.pipeline, frames, "/tmp/test.pcap")
"""
import argparse
import ipaddress
import json
import os
import struct
import subprocess

CLIENT_MAC = bytes.fromhex("020000000001")
SERVER_MAC = bytes.fromhex("020000000002")
SYN, ACK = 0x02, 0x10


def ip_checksum(header):
    """RFC 1071 over the whole header, computed from scratch."""
    total = sum(struct.unpack("!%dH" % (len(header) // 2), header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet(ethertype, payload):
    return SERVER_MAC + CLIENT_MAC + struct.pack("!H", ethertype) + payload


def ipv4(src, dst, proto, payload):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                         ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    header = header[:10] + struct.pack("!H", ip_checksum(header)) + header[12:]
    return ethernet(0x0800, header + payload)


def ipv6(src, dst, next_header, payload):
    header = struct.pack("!IHBB16s16s", 6 << 28, len(payload), next_header, 64,
                         ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed)
    return ethernet(0x86DD, header + payload)


def tcp(sport, dport, flags=SYN):
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0)


def udp(sport, dport, data=b""):
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def write_pcap(path, frames):
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # LINKTYPE_ETHERNET
        for index, frame in enumerate(frames):
            frame = frame + bytes(max(0, 60 - len(frame)))  # Ethernet minimum, as on the wire
            out.write(struct.pack("<IIII", 1700000000 + index, 0, len(frame), len(frame)))
            out.write(frame)


def test_arguments():
    """A stage test's command line (--xdp-pipeline, --pipeline, --work-dir, as CTest passes them), with the
    work directory made. None, after saying why, when the test cannot run: replay needs root for
    BPF_PROG_TEST_RUN (the test then exits 77, which CTest reports as skipped)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--xdp-pipeline", required=True)
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("--work-dir", required=True)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("skipped: replay needs root (BPF_PROG_TEST_RUN)")
        return None
    os.makedirs(args.work_dir, exist_ok=True)
    return args


def replay(xdp_pipeline, pipeline, frames, pcap):
    """Writes `frames` to `pcap`, replays them with --json. Returns (packets, summary), or (None, None)
    after printing why when the replay itself failed."""
    write_pcap(pcap, frames)
    run = subprocess.run([xdp_pipeline, "replay", pipeline, "--pcap", pcap, "--json"], capture_output=True, text=True)
    if run.returncode != 0:
        print(run.stdout + run.stderr)
        print("FAIL: xdp-pipeline replay exited with %d" % run.returncode)
        return None, None
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    packets = [line for line in lines if "packet" in line]
    summary = next((line["summary"] for line in lines if "summary" in line), {})
    return packets, summary
