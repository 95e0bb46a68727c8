"""Write tests/weights.json, each test module's seconds, from the output of a run with --durations=0.

    .venv/bin/python -m pytest -n 3 --dist loadfile --durations=0 | tee /tmp/run.log
    .venv/bin/python scripts/test_weights.py /tmp/run.log

pytest-xdist hands whole modules to its processes; tests/conftest.py orders the modules by these weights,
heaviest first, so that a long module never starts last and leaves the other processes idle (xdist's own
order, by number of tests, started the one-test 90-second crash module last). Only the order depends on
them: a stale or missing weight costs minutes of a run, never a result.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

LINE = re.compile(r"^(\d+(?:\.\d+)?)s (?:call|setup|teardown)\s+tests/([\w/]+\.py)::")
OUT = Path(__file__).resolve().parents[1] / "tests" / "weights.json"


def module_seconds(lines: list[str]) -> dict[str, int]:
    seconds: dict[str, float] = defaultdict(float)
    for line in lines:
        found = LINE.match(line)
        if found:
            seconds[found.group(2)] += float(found.group(1))
    return {module: round(s) for module, s in sorted(seconds.items(), key=lambda kv: -kv[1])}


def main(log: str) -> None:
    weights = module_seconds(Path(log).read_text(encoding="utf-8", errors="replace").splitlines())
    if not weights:
        sys.exit(f"no --durations=0 lines in {log}")
    OUT.write_text(json.dumps(weights, indent=1) + "\n", encoding="utf-8")
    print(f"{len(weights)} modules, {sum(weights.values())} s, written to {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
