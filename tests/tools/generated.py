"""What every generator of a committed file does with its output: write it, or with --check say it is stale."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(target: Path, text: str, argv: list[str], regenerate: str) -> int:
    """Write text to target; with --check in argv, only compare: 1 (and how to regenerate) when they differ."""
    if "--check" in argv:
        if not target.exists() or target.read_text() != text:
            print(f"{target.name} is stale: run `{regenerate}` and commit it", file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    return 0
