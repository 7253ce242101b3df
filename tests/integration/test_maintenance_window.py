"""The maintenance_window playbook on lab2: the site answers 503 during the window and is served after it; a
failing step leaves maintenance when the stack is healthy; an unhealthy stack stays in maintenance. The OS upgrade
step upgrades a dummy package from a local apt repository, the only one apt reads (no mirror is reached)."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import itertools
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import lab
from harness.aptrepo import PACKAGE, apt_repo
from harness.labctl import lab_up
from harness.playbook import PlaybookRun, check_run, run_playbook
from harness.snapshot import diff, snapshot
from harness.web import reload_nginx, request

pytestmark = pytest.mark.lab_hosts("lab2")

PLAYBOOK = "stackops.runbooks.maintenance_window"


def answer_from_outside(host: lab.Host) -> tuple[int, str | None, bytes]:
    """The site as a visitor sees it, from an address that is not let through: status, Retry-After, body."""
    status, headers, body = request("GET", f"http://{host.addr}/api/customers/1", source="127.0.2.9")
    return status, headers.get("retry-after"), body


def status_from_outside(host: lab.Host) -> tuple[int, str | None]:
    return answer_from_outside(host)[:2]


@contextlib.contextmanager
def webhook(host: lab.Host) -> Iterator[tuple[str, list[dict]]]:
    """A webhook on the controller that records each announcement, and from "started" to the end what a visitor
    sees every 50 ms (the window was announced before the maintenance page went up, as the runbooks do it)."""
    events: list[dict] = []
    done = threading.Event()

    def watch(seen: list) -> None:
        while not done.wait(0.05) and len(seen) < 2000:
            try:
                seen.append(status_from_outside(host))
            except OSError as exc:
                seen.append((0, type(exc).__name__))

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if event["event"] == "started":
                event["visitors_saw"] = []
                threading.Thread(target=watch, args=(event["visitors_saw"],), daemon=True).start()
            else:
                done.set()
            events.append(event)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", events
    finally:
        server.shutdown()
        server.server_close()


def window(url: str, **extra: object) -> PlaybookRun:
    """The window on lab2, announcing to url."""
    extravars = {"maintenance_window_webhook": url, "maintenance_window_reason": "test window", **extra}
    return run_playbook(PLAYBOOK, limit="lab2", extravars=extravars)


@pytest.mark.matrix
def test_a_window_serves_503_during_the_work_and_the_site_after(hosts: dict) -> None:
    lab2 = hosts["lab2"]
    app_before = lab.compose(lab2, "ps", "-q", "app").stdout.strip()
    with webhook(lab2) as (url, events):
        run = window(
            url,
            # The app is stopped for the work; nginx keeps answering with the page (a step such as
            # recover_service would restart nginx after the app, as its dependant, and refuse connections).
            maintenance_window_stop_services=["app"],
        )
    run.assert_ok()
    assert [(e["event"], e["host"], e["reason"]) for e in events] == [
        ("started", "lab2", "test window"),
        ("finished", "lab2", "test window"),
    ]
    seen = events[0]["visitors_saw"]
    assert (503, "900") in seen, "no maintenance page during the window"
    assert set(seen) <= {(200, None), (503, "900")}, set(seen)
    # Served until the page went up, then only the page, then served again once maintenance was off.
    runs = [status for status, _group in itertools.groupby(seen)]
    assert runs in ([(503, "900"), (200, None)], [(200, None), (503, "900"), (200, None)]), runs
    assert status_from_outside(lab2) == (200, None)
    assert lab.compose(lab2, "ps", "-q", "app").stdout.strip() == app_before  # stopped and started, not recreated
    assert run.artifacts["maintenance_window"]["lab2"] == {
        "state": "served",
        "result": "ok",
        "reason": "test window",
        "os_upgrade": None,  # not asked for
    }


def test_a_failing_step_leaves_maintenance_when_the_stack_is_healthy(hosts: dict) -> None:
    lab2 = hosts["lab2"]
    with webhook(lab2) as (url, events):
        run = window(
            url,
            maintenance_window_steps=[{"role": "stackops.runbooks.recover_service"}],
            # An emergency mode without its confirmation: the step refuses, for real.
            recover_service_mode="full_restart",
        )
    assert run.failed_hosts() == {"lab2"}
    message = run.result("lab2", "Fail with the state the site was left in")["msg"]
    assert message.startswith("Maintenance window on lab2 failed at ")
    assert message.endswith("The stack is ok, so the site is serving again.")
    assert [e["event"] for e in events] == ["started", "failed"]
    assert status_from_outside(lab2) == (200, None)
    record = run.artifacts["maintenance_window"]["lab2"]
    assert record["state"] == "served" and record["result"] == "failed"


def test_an_unhealthy_stack_stays_in_maintenance_and_says_why(hosts: dict) -> None:
    lab2 = hosts["lab2"]
    lab.compose(lab2, "stop", "redis")
    try:
        with webhook(lab2) as (url, events):
            run = window(url)
        assert run.failed_hosts() == {"lab2"}
        message = run.result("lab2", "Fail with the state the site was left in")["msg"]
        assert "so the site stays in maintenance" in message and "stackops-lab2-redis-1 is exited" in message
        assert status_from_outside(lab2) == (503, "900")
        assert (lab2.dir / "nginx" / "maintenance" / "on").exists()
        assert [e["event"] for e in events] == ["started", "failed"]
        assert run.artifacts["maintenance_window"]["lab2"]["state"] == "maintenance"
    finally:
        lab_up()
    assert status_from_outside(lab2) == (200, None)


def test_enter_and_exit_run_alone_for_awx_workflows(hosts: dict) -> None:
    lab2 = hosts["lab2"]
    try:
        entered = run_playbook(PLAYBOOK, limit="lab2", tags="enter")
        entered.assert_ok()
        assert status_from_outside(lab2) == (503, "900")
        left = run_playbook(PLAYBOOK, limit="lab2", tags="exit")
        left.assert_ok()
        assert status_from_outside(lab2) == (200, None)
        assert left.artifacts["maintenance_window"]["lab2"]["state"] == "served"
    finally:
        lab_up()


def test_check_mode_predicts_the_window_and_changes_nothing(hosts: dict) -> None:
    lab2 = hosts["lab2"]
    app_before = lab.compose(lab2, "ps", "-q", "app").stdout.strip()
    nginx_dir = lab2.dir / "nginx"
    files_before = {p: p.read_bytes() for p in nginx_dir.rglob("*") if p.is_file()}
    with webhook(lab2) as (url, events):
        run = check_run(
            run_playbook,
            PLAYBOOK,
            limit="lab2",
            extravars={"maintenance_window_stop_services": ["app"], "maintenance_window_webhook": url},
        )
    assert events == [], "a --check run announced a window to the webhook"
    # Maintenance on and the app stopped: predicted, none of it done. (Maintenance off also predicts a change
    # when the snippets are not in place yet, so the total is not fixed.)
    for task in ("Turn nginx's maintenance mode on", "Stop the services the work needs stopped"):
        assert run.result("lab2", task)["changed"] is True, task
    assert {p: p.read_bytes() for p in nginx_dir.rglob("*") if p.is_file()} == files_before
    assert not (nginx_dir / "maintenance" / "on").exists()
    assert lab.compose(lab2, "ps", "-q", "app").stdout.strip() == app_before
    assert status_from_outside(lab2) == (200, None)


def test_nothing_runs_in_the_window_unless_the_page_is_proven_up(hosts: dict) -> None:
    """A second server block answering lab2's address (named after it) without the maintenance snippet: the flag
    is set, but a visitor is still served. The window must stop there: the switch undone, nothing stopped, no
    step run, and the host as it was."""
    lab2 = hosts["lab2"]
    other = lab2.dir / "nginx" / "conf.d" / "other.conf"
    run_playbook(PLAYBOOK, limit="lab2", tags="exit").assert_ok()  # the role's snippets in place, site served
    other.write_text(
        f"server {{\n    listen {lab2.addr}:80;\n    server_name {lab2.addr};\n"
        "    location / { return 200 'another server'; }\n}\n"
    )
    try:
        reload_nginx(lab2)
        visitor = answer_from_outside(lab2)
        assert visitor == (200, None, b"another server")
        before = snapshot(lab2)
        with webhook(lab2) as (url, events):
            run = window(
                url,
                maintenance_window_stop_services=["app"],
                # A step that would fail loudly if it ran: an emergency mode without its confirmation.
                maintenance_window_steps=[{"role": "stackops.runbooks.recover_service"}],
                recover_service_mode="full_restart",
            )
        after = snapshot(lab2)
        assert run.failed_hosts() == {"lab2"}
        failed = run.result("lab2", "Turn nginx's maintenance mode on")
        assert failed["msg"].startswith("nginx does not answer with maintenance on within 10 s"), failed["msg"]
        assert f"http://{lab2.addr}:80/stackops-maintenance-probe (Host {lab2.addr}" in failed["msg"]
        assert "answered 200, Retry-After missing, not the maintenance page" in failed["msg"]
        message = run.result("lab2", "Fail with the state the site was left in")["msg"]
        assert message.startswith("Maintenance window on lab2 failed at Turn nginx's maintenance mode on: nginx does")
        assert message.endswith("The site never went into maintenance and serves as before; nothing was stopped.")
        ran = {e["event_data"].get("task") for e in run.events if e["event"] == "runner_on_ok" and e.get("event_data")}
        assert "Stop the services the work needs stopped" not in ran and "Run each step of the work" not in ran
        assert diff(before, after) == []
        assert answer_from_outside(lab2) == visitor
        assert not (lab2.dir / "nginx" / "maintenance" / "on").exists()
        assert [e["event"] for e in events] == ["started", "failed"]
        assert run.artifacts["maintenance_window"]["lab2"]["state"] == "served"
    finally:
        other.unlink()
        reload_nginx(lab2)
    assert status_from_outside(lab2) == (200, None)


def installed(package: str) -> str:
    query = ["dpkg-query", "-W", "-f", "${Version}", package]
    return subprocess.run(query, check=False, capture_output=True, text=True).stdout


def upgrade_result(run: PlaybookRun) -> dict:
    return run.result("lab2", "Summarise the OS upgrade")["ansible_facts"]["maintenance_window_os_upgrade_result"]


def test_os_upgrade_lists_then_applies_the_upgrades_and_a_second_run_finds_none() -> None:
    """The step alone (`--tags os_upgrade`: no maintenance page, the stack untouched), with apt reading only a local
    repository: --check lists stackops-probe 1.0 -> 1.1 and changes nothing, the real run upgrades exactly that (the
    same task changed), and a second run finds nothing to do. This machine's own lists offer other upgrades; none is
    listed. Three runs, not the four-step: each is 15 to 20 s of apt on a loaded machine."""
    with apt_repo() as repo:
        extravars = {
            "maintenance_window_os_upgrade": True,
            "maintenance_window_os_upgrade_apt_config": str(repo.config),
        }
        window = {"limit": "lab2", "tags": "os_upgrade", "extravars": extravars}
        check = check_run(run_playbook, PLAYBOOK, **window)
        planned = upgrade_result(check)
        assert planned["upgrades"] == [{"name": PACKAGE, "from": "1.0", "to": "1.1"}], planned
        assert planned["rebooted"] is False and planned["reboot_required"] == Path("/run/reboot-required").exists()
        assert [task.split(" (")[0] for task in check.changed_tasks()["lab2"]] == [
            "maintenance_window : Upgrade the listed packages"
        ]
        assert installed(PACKAGE) == "1.0"
        real = run_playbook(PLAYBOOK, **window)
        real.assert_ok()
        assert real.changed_tasks() == check.changed_tasks() and upgrade_result(real) == planned
        assert installed(PACKAGE) == "1.1"
        again = run_playbook(PLAYBOOK, **window)
        again.assert_ok()
        assert again.changed() == {"lab2": 0} and upgrade_result(again)["upgrades"] == []
    assert installed(PACKAGE) == ""


def test_a_reboot_without_confirmation_is_refused_before_anything() -> None:
    """Refused before the window opens, whatever else is asked (no upgrade here: apt would reach the mirrors)."""
    check_run(
        run_playbook,
        PLAYBOOK,
        limit="lab2",
        extravars={"maintenance_window_os_reboot": True},
        refused="set maintenance_window_os_reboot_confirm=true to go ahead",
    )
