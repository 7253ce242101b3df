"""nginx_config's operations (module_utils/_nginx_operations): the input check, the pure planners of each file
(dest with its upstream switch, the maintenance and WebSocket snippets), the steps they turn into, and check mode
through the Recorder, which plans the same steps and changes nothing.

The readings are real: the `nginx -T` of a lab host's nginx (1.22.1, in its compose service: `docker compose exec
-T nginx nginx -T -c /etc/nginx/stackops/nginx.conf`), and its conf.d/app.conf, which `stat` showed as 0644
root:root."""

from __future__ import annotations

import re
import typing as t
from pathlib import Path

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import _nginx_operations as ops
from ansible_collections.stackops.runbooks.plugins.module_utils._compose import ProjectRef
from ansible_collections.stackops.runbooks.plugins.module_utils._nginx import Nginx, NginxError
from ansible_collections.stackops.runbooks.plugins.module_utils._nginx_probe import probe_targets
from ansible_collections.stackops.runbooks.plugins.module_utils._operation import Recorder
from ansible_collections.stackops.runbooks.plugins.modules import nginx_config

DUMP = (Path(__file__).parent / "fixtures" / "nginx" / "1.22.1-T-lab1.txt").read_text()
APP_CONF = DUMP.split("# configuration file /etc/nginx/stackops/conf.d/app.conf:\n", 1)[1].encode()
APP_ATTRS = ops.Attrs(0o644, 0, 0)
# The lab's compose service bind-mounts the host's nginx directory here.
HOST, INSIDE = "/var/lib/stackops-lab/hosts/lab1/nginx", "/etc/nginx/stackops"


def params(**extra: t.Any) -> dict[str, t.Any]:
    """nginx_config's params as Ansible hands them over: every option at its default, and the ones given."""
    return {**{name: spec.get("default") for name, spec in nginx_config.argument_spec().items()}, **extra}


def options(**extra: t.Any) -> ops.Options:
    return ops.check_inputs(params(**extra))


def to_nginx(path: str) -> str:
    assert path.startswith(HOST + "/"), path
    return INSIDE + path[len(HOST) :]


# --- the input check --------------------------------------------------------------------------------------------


def test_check_inputs_gives_a_frozen_record_of_the_options() -> None:
    o = options(
        dest=f"{HOST}/conf.d/app.conf",
        upstream="app",
        upstream_servers=["127.0.2.1:8001"],
        mode="0640",
        maintenance=True,
        compose_project_src="/srv/app",
        compose_service="nginx",
    )
    assert (o.mode, o.maintenance, o.upstream_servers, o.maintenance_exempt_paths) == (
        0o640,
        "on",
        ("127.0.2.1:8001",),
        ("/health",),
    )
    assert o.compose_project == ProjectRef("/srv/app")
    assert o.manages_dest
    with pytest.raises(AttributeError):
        o.dest = "/elsewhere"  # type: ignore[misc]
    assert options(tls_report=True, mode="bad").mode is None  # mode is only read with dest
    assert options(maintenance=False).maintenance == "off"
    assert options(tls_report=True, retry_after=-1).retry_after == -1  # retry_after is only read with maintenance


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, "Nothing to do: give dest with content, src or upstream, maintenance, websocket or tls_report."),
        ({"content": "x"}, "content, src and upstream need dest, the live file to change."),
        ({"dest": "/etc/nginx/conf.d/a.conf"}, "dest needs content, src or upstream."),
        ({"dest": "/d/a.conf", "content": "x", "src": "/s"}, "Give exactly one of content and src."),
        ({"dest": "/d/a.conf", "upstream": "app"}, "upstream app needs upstream_servers"),
        ({"dest": "/d/a.conf", "content": "x", "mode": "rw"}, "mode 'rw' is not an octal mode such as '0644'."),
        ({"dest": "/d/a.conf", "content": "x", "mode": "17777"}, "mode '17777' is not a file mode"),
        ({"maintenance": "sometimes"}, "maintenance must be on or off, not 'sometimes'."),
        ({"maintenance": "on", "retry_after": -1}, "retry_after must be 0 or more seconds, not -1."),
    ],
)
def test_check_inputs_refuses_before_nginx_is_read(extra: dict[str, t.Any], message: str) -> None:
    with pytest.raises(NginxError, match=re.escape(message)):
        options(**extra)


# --- the planners, on the recorded readings -----------------------------------------------------------------------


def test_plan_dest_switches_the_live_upstream_and_keeps_mode_and_owner() -> None:
    o = options(dest=f"{HOST}/conf.d/app.conf", upstream="app", upstream_servers=["127.0.2.1:8001"])
    want = ops.plan_dest(o, None, APP_CONF, APP_ATTRS, (None, None))
    assert want.content.decode().startswith(
        "# The app behind nginx, as the runbooks' stacks run it.\nupstream app {\n    server 127.0.2.1:8001;\n"
        "    keepalive 16;\n}\n"
    )
    assert want.content.replace(b"8001", b"8000") == APP_CONF
    assert (want.mode, want.uid, want.gid) == (0o644, 0, 0)
    assert ops.plan_dest(o, None, want.content, APP_ATTRS, (None, None)) == want  # a second run: the same file


def test_plan_dest_of_given_content_mode_and_owner() -> None:
    o = options(dest=f"{HOST}/conf.d/app.conf", content="x", mode="0640")
    assert ops.plan_dest(o, b"x", APP_CONF, APP_ATTRS, (33, None)) == ops.Wanted(b"x", 0o640, 33, 0)
    new = options(dest=f"{HOST}/conf.d/new.conf", content="x")
    assert ops.plan_dest(new, b"x", None, None, (None, None)) == ops.Wanted(b"x", 0o644, 0, 0)
    switched = options(dest=f"{HOST}/conf.d/app.conf", content="x", upstream="app", upstream_servers=["b:1"])
    assert b"server b:1;" in ops.plan_dest(switched, APP_CONF, None, None, (None, None)).content


def test_plan_dest_refuses_an_upstream_switch_of_a_missing_file_or_block() -> None:
    o = options(dest=f"{HOST}/conf.d/new.conf", upstream="app", upstream_servers=["127.0.2.1:8001"])
    with pytest.raises(NginxError, match="Give exactly one of content and src"):
        ops.plan_dest(o, None, None, None, (None, None))
    other = options(dest=f"{HOST}/conf.d/app.conf", upstream="green", upstream_servers=["127.0.2.1:8001"])
    with pytest.raises(NginxError, match="No `upstream green"):
        ops.plan_dest(other, None, APP_CONF, APP_ATTRS, (None, None))


def test_maintenance_files_point_nginx_at_its_own_paths() -> None:
    o = options(maintenance="on", maintenance_allow=["203.0.113.0/24"], retry_after=600)
    paths = ops.maintenance_paths(o, f"{HOST}/maintenance")
    assert paths == {
        "flag": f"{HOST}/maintenance/on",
        "page": f"{HOST}/maintenance/page.html",
        "http": f"{HOST}/maintenance/http.conf",
        "server": f"{HOST}/maintenance/server.conf",
    }
    files = ops.maintenance_files(o, paths, b"<p>down</p>", to_nginx)
    assert list(files) == [paths["page"], paths["http"], paths["server"]]
    assert files[paths["page"]] == b"<p>down</p>"
    assert b"    203.0.113.0/24 1;\n" in files[paths["http"]]
    server = files[paths["server"]].decode()
    assert f"if (-f {INSIDE}/maintenance/on)" in server and f"alias {INSIDE}/maintenance/page.html;" in server
    assert "add_header Retry-After 600 always;" in server
    flagged = options(maintenance="on", maintenance_flag=f"{HOST}/run/on")
    assert ops.maintenance_paths(flagged, f"{HOST}/maintenance")["flag"] == f"{HOST}/run/on"


def test_maintenance_files_refuse_a_path_nginx_would_misread() -> None:
    o = options(maintenance="on")
    paths = ops.maintenance_paths(o, f"{HOST}/main tenance")
    with pytest.raises(NginxError, match="maintenance_flag '/etc/nginx/stackops/main tenance/on' holds ' '"):
        ops.maintenance_files(o, paths, b"", to_nginx)


def test_websocket_files_with_their_blocks() -> None:
    files = ops.websocket_files(options(websocket=True, websocket_read_timeout=90), f"{HOST}/websocket")
    assert {path: block for path, (_content, block) in files.items()} == {
        f"{HOST}/websocket/http.conf": "http",
        f"{HOST}/websocket/location.conf": "location",
    }
    assert b"proxy_read_timeout 90s;\nproxy_send_timeout 3600s;\n" in files[f"{HOST}/websocket/location.conf"][0]


def managed(live: bytes | None, current: ops.Attrs | None, want: bytes = b"new", mode: int = 0o644) -> ops.Managed:
    return ops.Managed(f"{HOST}/conf.d/app.conf", live, current, ops.Wanted(want, mode, 0, 0))


def test_file_steps_write_what_differs_and_reload_for_content() -> None:
    dest = f"{HOST}/conf.d/app.conf"
    same = managed(APP_CONF, APP_ATTRS, APP_CONF)
    assert ops.file_steps([same], None, True) == []
    mode_only = managed(APP_CONF, APP_ATTRS, APP_CONF, 0o640)
    assert [s.command for s in ops.file_steps([mode_only], None, True)] == [f"write {dest}"]
    content = managed(APP_CONF, APP_ATTRS)
    assert [s.command for s in ops.file_steps([same, content], dest, True)] == [
        f"write {dest} (backup first)",
        "reload nginx and wait for new workers",
    ]
    assert [s.command for s in ops.file_steps([managed(None, None)], None, False)] == [f"write {dest}"]


@pytest.mark.parametrize(
    ("current", "on", "commands"),
    [
        (None, True, ["create /m/on"]),
        (APP_ATTRS, True, []),
        (APP_ATTRS, False, ["remove /m/on"]),
        (None, False, []),
    ],
)
def test_flag_steps_switch_only_when_not_so_already(current: ops.Attrs | None, on: bool, commands: list[str]) -> None:
    flag = ops.Managed("/m/on", b"maintenance on\n" if current else None, current, ops.Wanted(b"", 0o644, 0, 0))
    assert [s.command for s in ops.flag_steps(flag, on)] == commands


def test_include_problem_on_the_recorded_dump() -> None:
    need = ops.Required("maintenance", f"{HOST}/maintenance/server.conf", "server")
    assert ops.include_problem(DUMP, need, f"{INSIDE}/conf.d/app.conf") is None
    assert ops.include_problem(DUMP, need, f"{INSIDE}/maintenance/server.conf") == (
        f"nginx's configuration does not include the maintenance server snippet {INSIDE}/maintenance/server.conf: "
        f"add `include {INSIDE}/maintenance/server.conf;` to the server block where it applies (a glob such as "
        f"`include {INSIDE}/maintenance/server*.conf;` also works before the file exists)."
    )


def test_probe_targets_of_the_recorded_dump() -> None:
    assert [(t.url, t.host, t.source) for t in probe_targets(DUMP, [])] == [
        ("http://127.0.2.1:80/stackops-maintenance-probe", "127.0.2.1", f"{INSIDE}/conf.d/app.conf:12"),
        ("https://127.0.2.1:443/stackops-maintenance-probe", "127.0.2.1", f"{INSIDE}/conf.d/app.conf:12"),
    ]


# --- check mode: the same plan, nothing changed -------------------------------------------------------------------


class FakeModule:
    def warn(self, _text: str) -> None:
        raise AssertionError("no warning expected")


def host_nginx(root: Path) -> Nginx:
    (root / "conf.d").mkdir()
    (root / "nginx.conf").write_text("events {}\n")
    return Nginx(FakeModule(), "nginx", config=str(root / "nginx.conf"))


def test_check_mode_records_the_plan_and_writes_nothing(tmp_path: Path) -> None:
    nginx = host_nginx(tmp_path)
    site = tmp_path / "conf.d" / "app.conf"
    site.write_bytes(APP_CONF)
    o = options(dest=str(site), upstream="app", upstream_servers=["127.0.2.1:8001"], websocket=True, backup=True)
    plan = ops.plan_files(o, nginx)
    assert [f.path for f in plan.files] == [
        str(site),
        *(str(tmp_path / "websocket" / n) for n in ("http.conf", "location.conf")),
    ]
    rec = Recorder(check=True)
    ops.apply_files(nginx, o, plan, rec)
    assert rec.changed
    assert rec.commands == [
        f"write {site} (backup first)",
        f"write {tmp_path}/websocket/http.conf",
        f"write {tmp_path}/websocket/location.conf",
        "reload nginx and wait for new workers",
    ]
    assert site.read_bytes() == APP_CONF and not (tmp_path / "websocket").exists()


def test_plan_files_refuses_a_dest_in_a_missing_directory(tmp_path: Path) -> None:
    nginx = host_nginx(tmp_path)
    o = options(dest=str(tmp_path / "sites" / "app.conf"), content="x")
    with pytest.raises(NginxError, match=re.escape(f"The directory of dest {tmp_path}/sites/app.conf does not exist.")):
        ops.plan_files(o, nginx)


@pytest.mark.parametrize(("flag_there", "on", "commands"), [(False, True, ["create {flag}"]), (True, True, [])])
def test_check_mode_plans_the_switch_and_leaves_the_flag(
    tmp_path: Path, flag_there: bool, on: bool, commands: list[str]
) -> None:
    flag = tmp_path / "maintenance" / "on"
    if flag_there:
        flag.parent.mkdir()
        flag.write_bytes(ops.FLAG_CONTENT)
    o = options(maintenance=on)
    plan = ops.FilePlan([], ops.maintenance_paths(o, str(tmp_path / "maintenance")), [])
    switch = ops.plan_switch(o, plan, DUMP)
    assert [t.url for t in switch.targets] == [
        "http://127.0.2.1:80/stackops-maintenance-probe",
        "https://127.0.2.1:443/stackops-maintenance-probe",
    ]
    rec = Recorder(check=True)
    ops.switch_maintenance(o, switch, rec, files_changed=False)
    assert rec.commands == [c.format(flag=flag) for c in commands]
    assert rec.changed == bool(commands)
    assert flag.exists() == flag_there and "maintenance_probe" not in rec.result
