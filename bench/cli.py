"""How long a ``chartvault`` command takes to start and answer, against Python's own start.

    python -m bench.cli [--runs 7]

A data folder with one archived document (a born-digital PDF, so no OCR) and one token is made outside
the timing. Then, alternating so that the machine's load lands on every command alike, each command runs
``--runs`` times as a new process, and the median wall time of each is printed with its ratio to the
median of ``python -c pass`` measured in the same run. Goals: ``show DOC --json``, ``search --json`` and
``token list`` at most 8x Python's start, ``--help`` at most 4x. The last line is JSON.

A second baseline, "library floor", is a process that only imports what any command reading the catalog
needs before it does anything (typer, pydantic-settings, SQLAlchemy's ORM): no command that reads the
catalog through these libraries can start faster than that.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOALS = {"--help": 4.0, "show DOC --json": 8.0, "search --json": 8.0, "token list": 8.0}
FLOOR = "import typer, pydantic_settings, sqlalchemy.orm"


def _born_digital_pdf(path: Path) -> Path:
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=letter)
    lines = [
        "DISCHARGE SUMMARY",
        "Patient: BENCH, CLI   MRN: 0099887766   DOB: 01/02/1960",
        "Date of Service: 03/04/2024",
        "Hospital course: the patient recovered well after treatment for pneumonia.",
    ]
    for i, line in enumerate(lines):
        c.drawString(72, 720 - 18 * i, line)
    c.save()
    return path


def _prepare(data: Path, env: dict[str, str]) -> str:
    """One archived, indexed document in ``data``; its id."""
    pdf = _born_digital_pdf(data.parent / "bench-cli.pdf")
    out = subprocess.run(
        [sys.executable, "-m", "chartvault.cli", "ingest", str(pdf), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(out.stdout)["files"][0]["documents"][0])


def _time(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[3:])} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        data = Path(tmp) / "data"
        env = {**os.environ, "CHARTVAULT_DATA_DIR": str(data)}
        doc_id = _prepare(data, env)
        cli = [sys.executable, "-m", "chartvault.cli"]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "library floor": [sys.executable, "-c", FLOOR],
            "--help": [*cli, "--help"],
            "show DOC --json": [*cli, "show", doc_id, "--json"],
            "search --json": [*cli, "search", "pneumonia", "--json"],
            "token list": [*cli, "token", "list"],
        }
        for cmd in commands.values():  # warm the file cache
            _time(cmd, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, cmd in commands.items():
                times[name].append(_time(cmd, env))
    base = statistics.median(times["python -c pass"])
    result: dict[str, dict[str, float | bool | None]] = {}
    print(f"{'command':<20} {'median s':>9} {'ratio':>7} {'goal':>6}")
    for name, samples in times.items():
        median = statistics.median(samples)
        ratio = median / base
        goal = GOALS.get(name)
        result[name] = {
            "median_s": round(median, 4),
            "ratio": round(ratio, 2),
            "goal": goal,
            "met": None if goal is None else ratio <= goal,
        }
        mark = "" if goal is None else ("ok" if ratio <= goal else "MISSED")
        print(f"{name:<20} {median:>9.3f} {ratio:>7.1f} {goal or '':>6} {mark}")
    print(json.dumps({"runs": args.runs, "commands": result}))


if __name__ == "__main__":
    main()
