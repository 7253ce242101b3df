"""Where a playbook's time goes: per task, the wall time from its start to its last host's result, and per host
the time its module ran (ansible-runner's event start/end), slowest first.

    python bench/profile_playbook.py stackops.runbooks.health_check -e health_check_report_dir=
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "lab")]

from harness.playbook import run_playbook  # noqa: E402


def stamp(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def main(argv: list[str]) -> None:
    playbook, extra = argv[0], dict(arg.split("=", 1) for arg in argv[1:] if "=" in arg)
    started = time.monotonic()
    run = run_playbook(playbook, extravars=extra)
    wall = time.monotonic() - started
    tasks: dict[str, dict[str, float]] = {}
    module_time: dict[str, float] = {}
    for event in run.events:
        data = event.get("event_data", {})
        if event.get("event") == "playbook_on_task_start":
            tasks.setdefault(data["task"], {"start": stamp(event["created"]), "end": stamp(event["created"])})
        elif data.get("start") and data.get("end") and data.get("task") in tasks:
            task = tasks[data["task"]]
            task["end"] = max(task["end"], stamp(data["end"]))
            host = data.get("host", "?")
            key = f"{data['task']} [{host}]"
            module_time[key] = module_time.get(key, 0.0) + stamp(data["end"]) - stamp(data["start"])
    total = sum(t["end"] - t["start"] for t in tasks.values())
    print(f"{playbook}: {wall:.2f} s wall, {len(tasks)} tasks, {total:.2f} s inside tasks, status {run.status}")
    print("slowest tasks (start to last result):")
    for name, span in sorted(tasks.items(), key=lambda kv: kv[1]["start"] - kv[1]["end"])[:15]:
        print(f"  {span['end'] - span['start']:6.2f} s  {name}")
    print("module run time per host (slowest 10):")
    for key, spent in sorted(module_time.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {spent:6.2f} s  {key}")
    for host in sorted(run.hosts):
        results = [e["event_data"].get("res", {}) for e in run.events if e["event_data"].get("host") == host]
        parts = next((r["elapsed_ms"] for r in results if isinstance(r.get("elapsed_ms"), dict)), None)
        if parts:
            print(f"inside stack_health on {host} (ms, parts run at once): {parts}")


if __name__ == "__main__":
    main(sys.argv[1:])
