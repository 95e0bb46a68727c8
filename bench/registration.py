"""What loading a large registration export costs: time and memory of the import, beside baselines.

    python -m bench.registration [--rows 1000000] [--bad-every 200] [--no-trace] [--keep DIR]

Writes a synthetic registration CSV of ``--rows`` patients (made-up names from syllables, MRNs 1..N,
every ``--bad-every``-th row an impossible date so some rows are refused) to a temp folder, then
measures, each in a fresh process so that peak figures are its own:

- ``csv``: a bare ``csv.reader`` pass over the file (the floor for reading it);
- ``csv+mrns``: the same pass keeping a dict MRN -> line, as the import does to refuse a repeated MRN
  (this is the one part of the import that grows with the file; its cost is shown on its own);
- ``executemany``: the rows inserted into a fresh, migrated SQLite catalog with the sqlite3 module's
  ``executemany`` from a generator over the reader, one transaction (the floor for writing them);
- ``import``: ``chartvault.archive.registration.import_registration`` of the file into a fresh SQLite
  catalog, then commit;
- ``reimport``: the same into a copy of the catalog that import filled (the nightly load: every row
  ``unchanged``, each chunk's patients read back and compared).

For each: wall time, growth of the process's peak resident memory (``ru_maxrss`` after minus before,
setup excluded) and, in a second process with ``tracemalloc`` on (slower: its time is not reported),
the peak of memory allocated by Python. Ratios are import / baseline: time against ``executemany``,
memory against ``csv+mrns`` (near 1: the import holds little beyond its dict of MRNs). The last line is
one JSON object.

It calls the archive function only, so it runs unchanged against older code: run it from a copy of an
older commit (``git archive REV | tar -x -C DIR``, this file copied in, ``cd DIR``) for before/after.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

MODES = ("csv", "csv+mrns", "executemany", "import", "reimport")
_SYLLABLES = ["ha", "lo", "wen", "mar", "ti", "ka", "ro", "sen", "li", "dov", "ber", "na", "qui", "sto"]


def write_csv(path: Path, rows: int, bad_every: int, seed: int = 7) -> int:
    """A synthetic export (made-up names); the number of rows written with an impossible date."""
    rng = random.Random(seed)
    first_day = date(1920, 1, 1).toordinal()
    span = date(2020, 12, 31).toordinal() - first_day
    bad = 0
    with path.open("w", encoding="utf-8", newline="") as fp:
        out = csv.writer(fp)
        out.writerow(["mrn", "last_name", "first_name", "middle_name", "dob", "sex"])
        for i in range(1, rows + 1):
            last = "".join(rng.choices(_SYLLABLES, k=3)).capitalize()
            first = "".join(rng.choices(_SYLLABLES, k=2)).capitalize()
            middle = rng.choice(_SYLLABLES).capitalize() if i % 3 == 0 else ""
            if bad_every and i % bad_every == 0:
                dob, bad = "1971-02-30", bad + 1
            else:
                dob = date.fromordinal(first_day + rng.randrange(span)).isoformat()
            out.writerow([f"{i:09d}", last, first, middle, dob, rng.choice("MFU")])
    return bad


def _catalog(url_path: Path) -> Any:
    from chartvault.archive.db import make_engine, upgrade

    engine = make_engine(f"sqlite:///{url_path}")
    upgrade(engine)
    return engine


def _run_csv(path: Path, db: Path) -> dict[str, Any]:
    n = 0
    with path.open(encoding="utf-8-sig", newline="") as fp:
        for _ in csv.reader(fp):
            n += 1
    return {"rows_read": n - 1}


def _run_csv_mrns(path: Path, db: Path) -> dict[str, Any]:
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8-sig", newline="") as fp:
        reader = csv.reader(fp)
        next(reader)
        for raw in reader:
            seen.setdefault(raw[0].strip(), reader.line_num)
    return {"mrns": len(seen)}


def _run_executemany(path: Path, db: Path) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")

    def rows() -> Any:
        with path.open(encoding="utf-8-sig", newline="") as fp:
            reader = csv.reader(fp)
            next(reader)
            for i, (mrn, last, first, middle, dob, sex) in enumerate(reader):
                name = f"{last}, {first} {middle[:1]}".strip().upper()
                yield (f"{i:032x}", mrn, name, dob, f"{last}|{first}".upper(), sex, "registration", now, now)

    with con:
        con.executemany(
            "INSERT INTO patients (id, mrn, name, dob, name_key, sex, source, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows(),
        )
    inserted = con.execute("SELECT count(*) FROM patients").fetchone()[0]
    con.close()
    return {"inserted": inserted}


def _import(path: Path, db: Path) -> dict[str, Any]:
    from chartvault.archive.db import make_engine, session_factory
    from chartvault.archive.registration import import_registration

    engine = make_engine(f"sqlite:///{db}")
    try:
        with session_factory(engine)() as s:
            counts = import_registration(s, path)
            s.commit()
    finally:
        engine.dispose()
    return {
        "imported": counts.imported,
        "unchanged": counts.unchanged,
        "refused": counts.refused,
        "errors_kept": len(counts.errors),
    }


_RUNS = {
    "csv": _run_csv,
    "csv+mrns": _run_csv_mrns,
    "executemany": _run_executemany,
    "import": _import,
    "reimport": _import,  # on a copy of the catalog the import filled: the nightly load, every row unchanged
}


def measure_here(mode: str, path: Path, db: Path, trace: bool) -> dict[str, Any]:
    """One measurement in this process (called in a fresh child by ``measure``)."""
    if mode in ("executemany", "import"):
        _catalog(db).dispose()  # a migrated catalog; made before the figures are taken
    import chartvault.archive.registration  # noqa: F401 - imports are setup, not the work measured

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    result = _RUNS[mode](path, db)
    seconds = time.perf_counter() - t0
    if trace:
        result["traced_peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    else:
        result["seconds"] = round(seconds, 3)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    result["rss_growth_kib"] = grown  # ru_maxrss is in KiB on Linux
    return result


def measure(mode: str, path: Path, work: Path, trace: bool) -> dict[str, Any]:
    db = work / f"{mode.replace('+', '-')}-{'trace' if trace else 'time'}.sqlite3"
    if mode == "reimport":
        shutil.copyfile(work / "filled.sqlite3", db)
    argv = [sys.executable, "-m", "bench.registration", "--child", mode, "--file", str(path), "--db", str(db)]
    out = subprocess.run(
        [*argv, *(["--trace"] if trace else [])], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{out.stderr}")
    if mode == "import" and not trace:
        db.rename(work / "filled.sqlite3")  # closed (checkpointed): the catalog a re-import starts from
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _mib(n: float) -> str:
    return f"{n / (1 << 20):8.1f} MiB"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--bad-every", type=int, default=200, help="every Nth row refused (0: none)")
    ap.add_argument("--no-trace", action="store_true", help="skip the tracemalloc runs (half the time)")
    ap.add_argument("--keep", type=Path, help="write the CSV here and keep it")
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(measure_here(args.child, args.file, args.db, args.trace)))
        return

    with tempfile.TemporaryDirectory(prefix="cv-bench-reg-") as tmp:
        work = Path(tmp)
        path = (args.keep or work) / f"registration-{args.rows}.csv"
        t0 = time.perf_counter()
        bad = write_csv(path, args.rows, args.bad_every)
        size = path.stat().st_size
        print(
            f"{args.rows:,} rows ({bad:,} with an impossible date), {size / (1 << 20):.1f} MiB, "
            f"written in {timedelta(seconds=round(time.perf_counter() - t0))}"
        )
        results: dict[str, dict[str, Any]] = {}
        for mode in MODES:
            results[mode] = measure(mode, path, work, trace=False)
            if not args.no_trace:
                results[mode].update(
                    {
                        k: v
                        for k, v in measure(mode, path, work, trace=True).items()
                        if k == "traced_peak_bytes"
                    }
                )
            r = results[mode]
            traced = _mib(r["traced_peak_bytes"]) if "traced_peak_bytes" in r else "   (not traced)"
            print(
                f"{mode:>12}: {r['seconds']:8.2f} s   RSS growth {_mib(r['rss_growth_kib'] * 1024)}   "
                f"tracemalloc peak {traced}"
            )
    imp, again, mrns = results["import"], results["reimport"], results["csv+mrns"]
    print(
        f"import: {imp['imported']:,} imported, {imp['refused']:,} refused, {imp['errors_kept']:,} errors "
        f"kept; reimport: {again['unchanged']:,} unchanged"
    )
    ratios = {
        "time_vs_executemany": imp["seconds"] / max(results["executemany"]["seconds"], 1e-9),
        "reimport_time_vs_executemany": again["seconds"] / max(results["executemany"]["seconds"], 1e-9),
        "time_vs_csv": imp["seconds"] / max(results["csv"]["seconds"], 1e-9),
        "rss_vs_csv_mrns": imp["rss_growth_kib"] / max(mrns["rss_growth_kib"], 1),
        "reimport_rss_vs_csv_mrns": again["rss_growth_kib"] / max(mrns["rss_growth_kib"], 1),
    }
    if "traced_peak_bytes" in imp:
        ratios["traced_vs_csv_mrns"] = imp["traced_peak_bytes"] / max(mrns["traced_peak_bytes"], 1)
        ratios["reimport_traced_vs_csv_mrns"] = again["traced_peak_bytes"] / max(mrns["traced_peak_bytes"], 1)
    print("ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    summary = {
        "rows": args.rows,
        "bytes": size,
        "results": results,
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
