"""Load test over HTTP: scanning stations upload while staff search, against the real server.

    python -m bench.load [--seconds 120] [--stations 4] [--searchers 4]

Starts ``chartvault serve`` (uvicorn) in a subprocess on a free loopback port with a temporary data
folder and ``CHARTVAULT_WORKERS=2``, makes a scanner token per station and one staff token with the
CLI, then:

1. *seed*: a few born-digital PDFs are uploaded and archived, so searches have something to find;
2. *baseline*: the searchers alone for ``--baseline-seconds`` (search p50/p95 with no uploads);
3. *load*: for ``--seconds``, ``--stations`` threads each upload batches of 1–2 corpus files
   (mostly the born-digital ``pdf_text`` ones, some of the smallest PNG/JPEG scans) with a pause
   between batches, while ``--searchers`` threads search (1–3 common medical words, sometimes an
   MRN filter);
4. *drain*: waits (bounded) until every uploaded batch is done, then checks that every uploaded
   page is archived (``GET /batches/{id}``).

Each upload is made unique (a PDF comment, a PNG ``tEXt`` chunk or a JPEG ``COM`` segment naming the
upload), so no upload is short-cut as a duplicate of an earlier one: every page goes through the
pipeline. Everything stays on loopback. Output: a table; the last line is one JSON object. Only ids
and figures are printed, never page text or identifiers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import load_manifest

WORDS = [
    *("patient", "history", "pain", "chest", "blood", "pressure", "diagnosis", "medications"),
    *("examination", "normal", "hypertension", "diabetes", "surgery", "abdomen", "heart", "lungs"),
    *("fever", "treatment", "follow", "discharge", "plan", "assessment", "allergies", "pulmonary"),
]
MIME = {"pdf_text": "application/pdf", "png": "image/png", "jpeg": "image/jpeg"}
ARCHIVED_PAGE_STATES = ("archived", "indexed")


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (no interpolation: a reported latency was actually observed)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def table(rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(str(c) for c in rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join("-" if c is None else str(c) for c in row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- making each upload unique (still a valid file of its format) -------------------------------------


def unique_bytes(data: bytes, fmt: str, tag: str) -> bytes:
    marker = f"chartvault-bench {tag}".encode()
    if fmt == "pdf_text":  # a comment after %%EOF: readers ignore it
        return data + b"\n%" + marker + b"\n"
    if fmt == "png":  # a tEXt chunk just before IEND
        chunk = b"tEXt" + b"Comment\x00" + marker
        packed = struct.pack(">I", len(marker) + 8) + chunk + struct.pack(">I", zlib.crc32(chunk))
        iend = data.rindex(b"IEND") - 4
        return data[:iend] + packed + data[iend:]
    if fmt == "jpeg":  # a COM segment right after SOI
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(marker) + 2) + marker + data[2:]
    return data


# --- the server -----------------------------------------------------------------------------------


class Server:
    """``chartvault serve`` in a subprocess, on loopback, with its own data folder."""

    def __init__(self, data_dir: Path, workers: int) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "CHARTVAULT_DATA_DIR": str(data_dir), "CHARTVAULT_WORKERS": str(workers)}
        self.log_path = data_dir.parent / "server.log"
        self.proc: subprocess.Popen | None = None
        self.cli = [sys.executable, "-m", "chartvault.cli"]
        exe = Path(sys.executable).with_name("chartvault")
        if exe.exists():
            self.cli = [str(exe)]

    def token(self, role: str, name: str) -> str:
        """A token of a new user of ``role`` (tokens belong to named users)."""
        username = "bench-" + "".join(ch if ch.isalnum() else "-" for ch in name.lower())
        subprocess.run(
            [*self.cli, "user", "create", username, "--role", role, "--name", name, "--no-password"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        out = subprocess.run(
            [*self.cli, "token", "create", "--user", username, "--name", name, "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return json.loads(out.stdout)["token"]

    def start(self, timeout: float = 120) -> None:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [*self.cli, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"server did not answer /health in {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


# --- the clients ----------------------------------------------------------------------------------


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    upload_s: list[float] = field(default_factory=list)
    search_s: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)  # "upload 500", "search 503", "search exc" ...
    batches: list[tuple[str, str, int, int]] = field(default_factory=list)  # (batch id, token, files, pages)

    def error(self, what: str, status: int | str) -> None:
        with self.lock:
            self.errors[f"{what} {status}"] += 1


def station(
    n: int,
    url: str,
    token: str,
    pool: list[dict],
    stats: Stats,
    max_batches: int,
    pause: tuple[float, float],
    stop: threading.Event,
) -> None:
    rng = random.Random(1000 + n)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        for seq in range(max_batches):
            if stop.is_set():
                return
            entries = rng.sample(pool, rng.choice((1, 1, 2)))
            files = []
            for i, e in enumerate(entries):
                ext = e["file"].suffix
                data = unique_bytes(e["file"].read_bytes(), e["format"], f"s{n}-b{seq}-f{i}")
                files.append(("files", (f"s{n}-b{seq}-f{i}{ext}", data, MIME[e["format"]])))
            form = {"station": f"bench-station-{n}", "operator": f"bench-op-{n}"}
            t0 = time.perf_counter()
            try:
                resp = client.post("/batches", files=files, data=form)
            except httpx.HTTPError as exc:
                stats.error("upload", type(exc).__name__)
                continue
            took = time.perf_counter() - t0
            if resp.status_code != 202:
                stats.error("upload", resp.status_code)
            else:
                pages = sum(e["page_count"] for e in entries)
                with stats.lock:
                    stats.upload_s.append(took)
                    stats.batches.append((resp.json()["batch_id"], token, len(entries), pages))
            stop.wait(rng.uniform(*pause))  # the operator loads the next stack


def searcher(
    n: int, url: str, token: str, mrns: list[str], stats: Stats, max_searches: int, stop: threading.Event
) -> None:
    rng = random.Random(2000 + n)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        for _ in range(max_searches):
            if stop.is_set():
                return
            params: dict[str, Any] = {"q": " ".join(rng.sample(WORDS, rng.randint(1, 3))), "limit": 20}
            if mrns and rng.random() < 0.25:
                params["mrn"] = rng.choice(mrns)
            t0 = time.perf_counter()
            try:
                resp = client.get("/search", params=params)
            except httpx.HTTPError as exc:
                stats.error("search", type(exc).__name__)
                continue
            took = time.perf_counter() - t0
            if resp.status_code != 200:
                stats.error("search", resp.status_code)
            else:
                with stats.lock:
                    stats.search_s.append(took)
            stop.wait(rng.uniform(0.05, 0.25))  # a person reads the results


def run_threads(targets: list[tuple[Any, tuple]], seconds: float) -> float:
    """Run the workers for ``seconds`` (then ask them to stop); the wall time they actually took."""
    stop = threading.Event()
    threads = [threading.Thread(target=fn, args=(*args, stop), daemon=True) for fn, args in targets]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(t.is_alive() for t in threads):
        stop.wait(min(0.2, max(0.0, deadline - time.monotonic())))
    stop.set()
    for t in threads:
        t.join(timeout=180)
    return time.perf_counter() - t0


def wait_for_batches(url: str, batches: list[tuple[str, str, int, int]], timeout: float) -> dict[str, dict]:
    """Poll every batch until done (bounded); the last report of each."""
    reports: dict[str, dict] = {}
    pending = {b[0]: b[1] for b in batches}
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=60) as client:
        while pending and time.monotonic() < deadline:
            for batch_id, token in list(pending.items()):
                resp = client.get(f"/batches/{batch_id}", headers={"Authorization": f"Bearer {token}"})
                if resp.status_code != 200:
                    continue
                report = resp.json()
                reports[batch_id] = report
                if report["done"] and report["status"] != "processing":
                    del pending[batch_id]
            if pending:
                time.sleep(1.0)
    return reports


def account(batches: list[tuple[str, str, int, int]], reports: dict[str, dict]) -> dict[str, Any]:
    """Pages uploaded (from the corpus manifest) against pages the server reports archived."""
    uploaded = sum(b[3] for b in batches)
    archived = duplicate = 0
    not_done: list[str] = []
    file_states: Counter = Counter()
    for batch_id, _, _, _ in batches:
        report = reports.get(batch_id)
        if report is None or not report["done"]:
            not_done.append(batch_id)
            continue
        for f in report["files"]:
            file_states[f["status"]] += 1
            if f["status"] == "archived":
                archived += sum(1 for p in f["pages"] if p["status"] in ARCHIVED_PAGE_STATES)
            elif f["status"] == "duplicate":
                duplicate += f["page_count"] or 0
    return {
        "pages_uploaded": uploaded,
        "pages_archived": archived,
        "pages_duplicate": duplicate,
        "all_pages_archived": not_done == [] and archived + duplicate == uploaded,
        "batches_not_done": not_done,
        "file_states": dict(file_states),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120, help="length of the load phase")
    ap.add_argument("--stations", type=int, default=4, help="scanning stations (upload threads)")
    ap.add_argument("--searchers", type=int, default=4, help="staff threads searching")
    ap.add_argument("--baseline-seconds", type=float, default=10, help="searchers alone, before the load")
    ap.add_argument("--workers", type=int, default=2, help="CHARTVAULT_WORKERS of the server")
    ap.add_argument("--max-batches", type=int, default=60, help="per station")
    ap.add_argument("--max-searches", type=int, default=5000, help="per searcher and phase")
    ap.add_argument(
        "--pause", type=float, nargs=2, default=(1.0, 3.0), help="seconds between a station's batches"
    )
    ap.add_argument("--image-share", type=float, default=0.3, help="share of PNG/JPEG in the upload pool")
    ap.add_argument("--drain-timeout", type=float, default=600, help="bound on waiting for the last batches")
    ap.add_argument(
        "--seed-files", type=int, default=6, help="born-digital PDFs archived before the baseline"
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the server

    corpus = load_manifest()
    pdfs = [e for e in corpus if e["format"] == "pdf_text"]
    images = sorted(
        (e for e in corpus if e["format"] in ("png", "jpeg")), key=lambda e: e["file"].stat().st_size
    )
    images = images[: max(4, len(images) // 3)]  # the smallest third
    # A pool whose draws are about (1 - image_share) PDFs and image_share images.
    n_img = round(len(pdfs) * args.image_share / max(1e-9, 1 - args.image_share))
    pool = pdfs + [images[i % len(images)] for i in range(n_img)]
    mrns = sorted({e["patient"]["mrn"] for e in pdfs if e.get("patient", {}).get("mrn")})

    tmp = Path(tempfile.mkdtemp(prefix="chartvault-load-"))
    server = Server(tmp / "data", args.workers)
    try:
        (tmp / "data").mkdir()
        scanner_tokens = [server.token("scanner", f"bench station {i}") for i in range(args.stations)]
        staff_token = server.token("staff", "bench staff")
        server.start()
        print(f"server {server.url} (pid {server.proc.pid}), data {tmp}", file=sys.stderr)

        # 1. seed
        seed = Stats()
        seed_pool = (pdfs * (1 + args.seed_files // max(1, len(pdfs))))[: args.seed_files]
        run_threads(
            [(station, (99, server.url, scanner_tokens[0], seed_pool, seed, len(seed_pool), (0, 0)))], 600
        )
        seed_reports = wait_for_batches(server.url, seed.batches, args.drain_timeout)
        print(f"seed: {len(seed.batches)} batches, {account(seed.batches, seed_reports)}", file=sys.stderr)

        # 2. baseline: searchers alone
        base = Stats()
        base_wall = run_threads(
            [
                (searcher, (i, server.url, staff_token, mrns, base, args.max_searches))
                for i in range(args.searchers)
            ],
            args.baseline_seconds,
        )

        # 3. load: stations and searchers together
        load = Stats()
        load_wall = run_threads(
            [
                (station, (i, server.url, scanner_tokens[i], pool, load, args.max_batches, tuple(args.pause)))
                for i in range(args.stations)
            ]
            + [
                (searcher, (i, server.url, staff_token, mrns, load, args.max_searches))
                for i in range(args.searchers)
            ],
            args.seconds,
        )

        # 4. drain
        t0 = time.perf_counter()
        reports = wait_for_batches(server.url, load.batches, args.drain_timeout)
        drain_s = time.perf_counter() - t0
        acct = account(load.batches, reports)
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    base_p95, load_p95 = percentile(base.search_s, 95), percentile(load.search_s, 95)
    archive_wall = load_wall + drain_s
    result = {
        "bench": "load",
        "seconds": round(load_wall, 1),
        "stations": args.stations,
        "searchers": args.searchers,
        "workers": args.workers,
        "batches": len(load.batches),
        "files": sum(b[2] for b in load.batches),
        "uploads_per_s": round(len(load.upload_s) / load_wall, 3),
        "upload_p50_ms": ms(percentile(load.upload_s, 50)),
        "upload_p95_ms": ms(percentile(load.upload_s, 95)),
        "searches": len(load.search_s),
        "searches_per_s": round(len(load.search_s) / load_wall, 2),
        "search_p50_ms": ms(percentile(load.search_s, 50)),
        "search_p95_ms": ms(load_p95),
        "baseline_searches_per_s": round(len(base.search_s) / base_wall, 2),
        "baseline_search_p50_ms": ms(percentile(base.search_s, 50)),
        "baseline_search_p95_ms": ms(base_p95),
        "search_p95_ratio": round(load_p95 / base_p95, 2) if base_p95 and load_p95 else None,
        "drain_s": round(drain_s, 1),
        "pages_archived_per_s": round(acct["pages_archived"] / archive_wall, 3),
        "errors": dict(load.errors + base.errors + seed.errors),
        **acct,
    }
    rows = [
        ["figure", "value"],
        ["load phase (s)", result["seconds"]],
        ["batches uploaded / files", f"{result['batches']} / {result['files']}"],
        ["uploads/s", result["uploads_per_s"]],
        ["upload p50 / p95 (ms)", f"{result['upload_p50_ms']} / {result['upload_p95_ms']}"],
        ["pages uploaded / archived", f"{acct['pages_uploaded']} / {acct['pages_archived']}"],
        ["pages archived per s (load + drain)", result["pages_archived_per_s"]],
        ["drain after load (s)", result["drain_s"]],
        ["searches/s (load)", result["searches_per_s"]],
        ["search p50 / p95 (ms), load", f"{result['search_p50_ms']} / {result['search_p95_ms']}"],
        [
            "search p50 / p95 (ms), baseline",
            f"{result['baseline_search_p50_ms']} / {result['baseline_search_p95_ms']}",
        ],
        ["search p95 load / baseline", result["search_p95_ratio"]],
        ["errors", json.dumps(result["errors"]) if result["errors"] else "none"],
        ["every uploaded page archived", acct["all_pages_archived"]],
    ]
    print(table(rows))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    out = main()
    sys.exit(0 if out["all_pages_archived"] and not out["errors"] else 1)
