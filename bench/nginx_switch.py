"""Requests from concurrent non-keep-alive clients against lab2's nginx while nginx_config enters and leaves
maintenance and applies a config change: how many requests failed, and how soon each switch was visible.

    python3 bench/nginx_switch.py            (the lab must be up; it runs the module over SSH like a user)

Bounded: CLIENTS threads for at most LIMIT_S seconds or LIMIT_REQUESTS requests, to 127.0.2.2 only. A failed
request is a connection error or a status other than 200 (served) and 503 (maintenance). The switch time of
maintenance is the module's maintenance_switched_at, taken right after the flag file's rename or unlink (file
timestamps are only as fine as the kernel's clock tick, about 4 ms).
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "lab")]

import lab  # noqa: E402

CLIENTS, LIMIT_S, LIMIT_REQUESTS = 8, 60, 400_000
HOST = next(h for h in lab.load_hosts() if h.name == "lab2")
MODULE = "stackops.runbooks.nginx_config"
BASE = {
    "compose_project_src": str(HOST.dir),
    "compose_project_name": HOST.project,
    "compose_service": "nginx",
}


def run(args: dict) -> dict:
    proc = subprocess.run(
        ["ansible", "lab2", "-m", MODULE, "-a", json.dumps(args), "-o"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{MODULE} failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.split("=>", 1)[1])


def client(stop: threading.Event, seen: list[tuple[int, int, object]]) -> None:
    while not stop.is_set() and len(seen) < LIMIT_REQUESTS:
        started = time.time_ns()
        conn = http.client.HTTPConnection(HOST.addr, 80, timeout=5)
        try:
            conn.request("GET", "/api/customers/1", headers={"Connection": "close"})
            response = conn.getresponse()
            response.read()
            outcome: object = response.status
        except OSError as exc:
            outcome = type(exc).__name__
        finally:
            conn.close()
        seen.append((started, time.time_ns(), outcome))


def switch_stats(seen: list, switch_ns: int, until_ns: int, old: int, new: int) -> tuple[int, float, float]:
    """For requests started between a switch and the next one: how many still got the old answer, how many ms
    after the switch the first new answer's request started, and the last old answer's (0 when none)."""
    window = [(s - switch_ns, o) for s, _e, o in seen if switch_ns <= s < until_ns]
    stale = [offset for offset, o in window if o == old]
    first_new = min((offset for offset, o in window if o == new), default=0)
    return len(stale), first_new / 1e6, max(stale, default=0) / 1e6


def main() -> None:
    run({**BASE, "maintenance": "off"})  # the snippets in place, not in maintenance
    site = HOST.dir / "nginx" / "conf.d" / "app.conf"
    original = site.read_text()
    stop, seen = threading.Event(), []
    threads = [threading.Thread(target=client, args=(stop, seen), daemon=True) for _client in range(CLIENTS)]
    begin = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        time.sleep(2)
        on_ns = int(run({**BASE, "maintenance": "on"})["maintenance_switched_at"] * 1e9)
        time.sleep(2)
        off_ns = int(run({**BASE, "maintenance": "off"})["maintenance_switched_at"] * 1e9)
        time.sleep(2)
        change = run({**BASE, "dest": str(site), "content": original + "# bench\n"})
        time.sleep(1)
        run({**BASE, "dest": str(site), "content": original})
        time.sleep(1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        if site.read_text() != original:
            site.write_text(original)
    elapsed = time.monotonic() - begin
    failed = [o for _s, _e, o in seen if o not in (200, 503)]
    # A request in flight across a flip may get either answer; outside the window it must be served.
    wrong = [s for s, e, o in seen if o == 503 and (e < on_ns or s > off_ns)]
    print(f"nginx_switch: {len(seen)} requests from {CLIENTS} non-keep-alive clients in {elapsed:.1f} s "
          f"({len(seen) / elapsed:.0f}/s)")  # fmt: skip
    print(f"  failed requests (errors or status other than 200/503): {len(failed)} {sorted(set(map(str, failed)))}")
    print(f"  503 outside the maintenance window: {len(wrong)}")
    # The stamps are taken right after the flag's rename or unlink; a preempted module may take them a few ms
    # late, so the maintenance window ends 50 ms before the off stamp.
    for label, switch, until, old, new in (
        ("on", on_ns, off_ns - 50_000_000, 200, 503),
        ("off", off_ns, time.time_ns(), 503, 200),
    ):
        stale, first_ms, last_ms = switch_stats(seen, switch, until, old, new)
        print(f"  maintenance {label}: {stale} requests started after the switch got the old answer (last at "
              f"{last_ms:.2f} ms); the first new answer's request started {first_ms:.2f} ms after it")  # fmt: skip
    print(f"  config change applied (new workers confirmed): {change['applied']}")


if __name__ == "__main__":
    main()
