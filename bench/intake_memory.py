"""What a many-fields upload costs a real server: peak memory, against a streamed file of the same size.

    python -m bench.intake_memory [--fields 200] [--field-bytes 1000000]

Starts ``chartvault serve`` on loopback with a temporary data folder and a scanner token, then sends
``POST /batches`` twice on fresh servers, reading the server's peak resident memory (``VmHWM`` in
``/proc/<pid>/status``) before and after each: (1) the baseline, one file part of ``fields x field-bytes``
bytes (streamed to disk, constant memory); (2) the same bytes as ``--fields`` form fields of
``--field-bytes`` each (before the total cap each field was held in memory: 200 fields raised the
server's memory by about 200 MB). Reports both peaks' growth, their ratio, and the status each request
got. Linux only (``/proc``). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.load import Server

BOUNDARY = "benchboundary"


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc status")


def many_fields(fields: int, size: int) -> Iterator[bytes]:
    chunk = b"x" * size
    for i in range(fields):
        head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\n'
        yield head.encode() + chunk + b"\r\n"
    yield f"--{BOUNDARY}--\r\n".encode()


def one_file(total: int) -> Iterator[bytes]:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="big.bin"\r\n\r\n'
    yield head.encode()
    block = b"\0" * (1 << 20)
    left = total
    while left > 0:
        yield block[: min(left, len(block))]
        left -= len(block)
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def measure(body: Iterator[bytes]) -> dict[str, int | str]:
    with tempfile.TemporaryDirectory(prefix="cv-bench-mem-") as tmp:
        server = Server(Path(tmp) / "data", workers=1)
        server.start()
        try:
            token = server.token("scanner", "bench station")
            assert server.proc is not None
            before = peak_rss_kib(server.proc.pid)
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            }
            try:
                status: int | str = httpx.post(
                    f"{server.url}/batches", content=body, headers=headers, timeout=600
                ).status_code
            except httpx.HTTPError as exc:  # the server may answer and close before reading it all
                status = type(exc).__name__
            after = peak_rss_kib(server.proc.pid)
            alive = server.proc.poll() is None
        finally:
            server.stop()
    return {"status": status, "peak_before_kib": before, "peak_after_kib": after, "alive": int(alive)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fields", type=int, default=200)
    ap.add_argument("--field-bytes", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    if not sys.platform.startswith("linux"):
        raise SystemExit("needs Linux /proc")
    total = args.fields * args.field_bytes
    baseline = measure(one_file(total))
    fields = measure(many_fields(args.fields, args.field_bytes))
    grow_base = int(baseline["peak_after_kib"]) - int(baseline["peak_before_kib"])
    grow_fields = int(fields["peak_after_kib"]) - int(fields["peak_before_kib"])
    print(f"one {total:,}-byte file: status {baseline['status']}, peak memory +{grow_base / 1024:.1f} MiB")
    print(
        f"{args.fields} fields x {args.field_bytes:,} bytes: status {fields['status']}, "
        f"peak memory +{grow_fields / 1024:.1f} MiB"
    )
    ratio = grow_fields / max(grow_base, 1)
    print(f"ratio fields/file: {ratio:.2f}")
    summary = {"baseline": baseline, "fields": fields, "ratio": round(ratio, 3), "bytes": total}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
