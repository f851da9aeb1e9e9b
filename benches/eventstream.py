"""Event-stream decode throughput: the native decoder vs Python decoders.

A Bedrock ConverseStream body of N contentBlockDelta events (about 120 bytes each, as Bedrock
sends them, with their "p" padding), fed in 4 KiB network reads. Python baselines: botocore's
own ``EventStreamBuffer`` (what boto3 users run) and a minimal struct + zlib decoder.

    PYTHONPATH=python:. python benches/eventstream.py [--events 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import struct
import time
import zlib

from botocore.eventstream import EventStreamBuffer

from relay.native import EventStreamDecoder
from tests.native.eventstream_reference import event


def python_decode(chunks: list[bytes]) -> int:
    """A plain Python decoder with the same checks (both CRCs, string headers)."""
    buf, count = b"", 0
    for chunk in chunks:
        buf += chunk
        while len(buf) >= 12:
            total, hlen, pcrc = struct.unpack(">III", buf[:12])
            if zlib.crc32(buf[:8]) != pcrc:
                raise ValueError("prelude crc")
            if len(buf) < total:
                break
            frame, buf = buf[:total], buf[total:]
            if zlib.crc32(frame[:-4]) != struct.unpack(">I", frame[-4:])[0]:
                raise ValueError("message crc")
            headers, pos = {}, 12
            while pos < 12 + hlen:
                n = frame[pos]
                name = frame[pos + 1 : pos + 1 + n].decode()
                pos += 1 + n + 1
                (length,) = struct.unpack(">H", frame[pos : pos + 2])
                headers[name] = frame[pos + 2 : pos + 2 + length].decode()
                pos += 2 + length
            count += 1
    return count


def native_decode(chunks: list[bytes]) -> int:
    decoder = EventStreamDecoder()
    return sum(len(decoder.feed(c)) for c in chunks)


def botocore_decode(chunks: list[bytes]) -> int:
    buffer, count = EventStreamBuffer(), 0
    for chunk in chunks:
        buffer.add_data(chunk)
        count += sum(1 for _ in buffer)
    return count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    payload = {"contentBlockIndex": 0, "delta": {"text": " lorem ipsum"}, "p": "abcdefghijklmno"}
    wire = b"".join(
        event("contentBlockDelta", json.dumps(payload).encode()) for _ in range(args.events)
    )
    chunks = [wire[i : i + 4096] for i in range(0, len(wire), 4096)]
    print(f"{args.events} events, {len(wire) / 1e6:.2f} MB in {len(chunks)} reads of 4 KiB")
    for name, decode in (
        ("native", native_decode),
        ("python struct+zlib", python_decode),
        ("botocore", botocore_decode),
    ):
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            assert decode(chunks) == args.events
            best = min(best, time.perf_counter() - start)
        print(
            f"{name:>20}: {len(wire) / best / 1e6:8.1f} MB/s  "
            f"{best / args.events * 1e6:6.2f} us/event  (best of {args.repeat})"
        )


if __name__ == "__main__":
    main()
