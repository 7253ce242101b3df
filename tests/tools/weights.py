"""Write tests/harness/weights.json, each integration module's time in seconds, from a `make test` run's
.build/times.tsv (STACKOPS_TIMES): the scheduler hands out the heaviest modules first (tests/harness/lanes.py).

The first setup of a module is counted up to 5 s only: it includes the wait for its hosts' locks.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "harness" / "weights.json"


def main(times: Path) -> None:
    total: Counter[str] = Counter()
    for line in times.read_text().splitlines():
        seconds, phase, nodeid = (line.split("\t")[index] for index in (1, 2, 4))
        module = Path(nodeid.split("::", 1)[0]).stem
        if phase == "setup" and module not in total:
            total[module] += min(float(seconds), 5.0)
        else:
            total[module] += float(seconds)
    OUT.write_text(json.dumps({module: round(seconds) for module, seconds in sorted(total.items())}, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
