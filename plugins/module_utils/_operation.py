"""The shape of a mutating module's run: each operation plans steps from what it read, and one recorder keeps what
the run did or, in check mode, would do.

A plan is a list of Steps. Check mode records the plan and stops; a real run records the same plan and carries it
out, so the audit list (the module's `commands`) and `changed` are the same answer in both. The recorder also keeps
the diff (before and after, per part) and how long each operation took.
"""

from __future__ import annotations

import contextlib
import time
import typing as t
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Step:
    """One action of a plan: `command` is how the audit list shows it, `data` what its executor needs."""

    command: str
    data: Mapping[str, t.Any] = field(default_factory=dict)


@dataclass
class Recorder:
    """What one module run did, or would do in check mode."""

    check: bool
    result: dict[str, t.Any] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    before: dict[str, t.Any] = field(default_factory=dict)
    after: dict[str, t.Any] = field(default_factory=dict)
    changed: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    # The result key of the audit list: `commands` (Redis), `queries` (PostgreSQL).
    audit: str = "commands"

    def plan(self, steps: list[Step]) -> bool:
        """Records a plan; True when its steps are to be carried out now (there are some, and this is no check)."""
        self.done(steps)
        return bool(steps) and not self.check

    def done(self, steps: list[Step]) -> None:
        """Records steps whose reading was their action (a SCAN that UNLINKs what it finds)."""
        self.commands += [step.command for step in steps]
        self.changed = self.changed or bool(steps)

    def diff(self, part: str, before: t.Any, after: t.Any) -> None:
        self.before[part], self.after[part] = before, after

    @contextlib.contextmanager
    def timed(self, operation: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings[operation] = round(time.monotonic() - started, 3)

    def outcome(self, diff: bool, *, timed: bool = True, **fields: t.Any) -> dict[str, t.Any]:
        """The module's result: changed, the audit list, the operations' fields and timings (unless the module
        reports its times itself: timed=False), the diff when asked."""
        result = {"changed": self.changed, self.audit: self.commands, **fields, **self.result}
        if timed:
            result["timings"] = self.timings
        if diff:
            result["diff"] = {"before": self.before, "after": self.after}
        return result
