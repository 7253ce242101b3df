"""Deploy and rollback on lab2 with the site serving throughout: a GET loop through nginx counts every answer that
is not 200 while each real run changes the stack, and sees the version the app reports change. Deploy of v2 (the
four steps, with a database backup into the release), a broken image undone by the rescue, the rollback of image
and database to the release, the rollback of .env, and requests refused before anything changes."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from psycopg2 import sql

import lab
from harness.paths import lab_credentials
from harness.pg import query
from harness.playbook import PlaybookRun, check_run, four_step, run_playbook

pytestmark = pytest.mark.lab_hosts("lab2", "engine")

DEPLOY = "stackops.runbooks.deploy"
ROLLBACK = "stackops.runbooks.rollback"
V2 = "stackops-lab:deploy-test-v2"
BROKEN = "stackops-lab:deploy-test-broken"
SCRATCH = "deploy_scratch"
# The backup and the database rollback act on a scratch database, so the app keeps its own and keeps serving. The
# surge's healthcheck polls every second (the lab's every 3 s), through the deploy's override of the surge.
FAST = {
    "deploy_drain_seconds": 1,
    "deploy_wait_timeout": 60,
    "deploy_surge_override": {"healthcheck": {"interval": "1s"}},
    "stackops_pg_db": SCRATCH,
}
# A migration in the new image, run in the surge before traffic reaches it: psql as postgres, with the password from
# the container's environment (never in an argument).
MIGRATION = [
    "sh",
    "-c",
    'PGPASSWORD="$POSTGRES_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 -h "$LAB_ADDR" -U postgres -d deploy_scratch'
    " -c \"INSERT INTO marker VALUES ('migrated by ' || '$APP_VERSION')\"",
]


@dataclass
class Load:
    """GET /health through nginx every ~10 ms on a new connection, in a thread, bounded in time and count."""

    addr: str
    max_seconds: float = 60
    max_requests: int = 6000
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    bounded: bool = False

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set():
            if self.requests >= self.max_requests or time.monotonic() >= deadline:
                self.bounded = True
                return
            self.requests += 1
            conn = http.client.HTTPConnection(self.addr, 80, timeout=5)
            try:
                conn.request("GET", "/health", headers={"Connection": "close"})
                answer = conn.getresponse()
                body = answer.read()
                if answer.status != 200:
                    self.failures.append(f"{answer.status} {body[:100]!r}")
                else:
                    version = json.loads(body)["version"]
                    if not self.versions or self.versions[-1] != version:
                        self.versions.append(version)
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            finally:
                conn.close()
            time.sleep(0.01)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Stack:
    host: lab.Host
    env: bytes
    upstream: bytes
    image: str
    release: str = ""
    loads: list[Load] = field(default_factory=list)

    @property
    def upstream_file(self) -> Path:
        return self.host.dir / "nginx" / "conf.d" / "app.conf"

    def state(self) -> tuple:
        """What a check-mode run must leave as it was."""
        return (
            app_container(self.host),
            (self.host.dir / ".env").read_bytes(),
            self.upstream_file.read_bytes(),
            surge_containers(self.host),
            releases(self.host),
        )

    def run(self, playbook: str, *, check: bool = False, **kwargs: object) -> PlaybookRun:
        """A run of the playbook on lab2: check mode must change nothing, a real run happens under load."""
        if check:
            before = self.state()
            result = run_playbook(playbook, check=True, limit="lab2", **kwargs)  # type: ignore[arg-type]
            assert self.state() == before, f"{playbook} --check changed the stack"
        else:
            started = time.monotonic()
            with Load(self.host.addr) as load:
                result = run_playbook(playbook, limit="lab2", **kwargs)  # type: ignore[arg-type]
            print(
                f"{playbook} ({result.status}, {time.monotonic() - started:.1f} s): {load.requests} requests, "
                f"{len(load.failures)} failed, versions {' -> '.join(load.versions)}"
            )
            assert not load.bounded, f"{playbook} outlasted the load loop's bounds ({load.requests} requests)"
            self.loads.append(load)
        secrets = lab_credentials("lab2").values()
        assert not [s for s in secrets if s in result.stdout], f"{playbook} printed a credential"
        return result


def app_container(host: lab.Host) -> str:
    return lab.containers(host)["app"]["id"]


def surge_containers(host: lab.Host) -> list[str]:
    return subprocess.check_output(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={host.project}-surge"], text=True
    ).split()


def releases(host: lab.Host) -> set[str]:
    folder = host.dir / "releases"
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def record(release: str) -> dict:
    return json.loads((Path(release) / "release.json").read_text())


def moved(versions: list[str], old: str, new: str) -> bool:
    """The site answered old, then new, and nothing else. While nginx's old workers finish after a reload, a request
    can still reach the previous target, so old and new may alternate for a moment (both answer 200)."""
    return versions[:1] == [old] and versions[-1:] == [new] and set(versions) == {old, new}


def app_version(host: lab.Host) -> str:
    """The version of the app container itself, not through nginx."""
    conn = http.client.HTTPConnection(host.addr, 8000, timeout=5)
    try:
        conn.request("GET", "/health")
        return json.loads(conn.getresponse().read())["version"]
    finally:
        conn.close()


def markers(host: lab.Host) -> list[str]:
    return [v for (v,) in query(host, SCRATCH, "SELECT v FROM marker ORDER BY v")]


def build(tag: str, dockerfile: str) -> None:
    with tempfile.TemporaryDirectory() as context:
        (Path(context) / "Dockerfile").write_text(dockerfile)
        subprocess.run(["docker", "build", "--quiet", "--tag", tag, context], check=True, capture_output=True)


@pytest.fixture(scope="module")
def stack(hosts: dict) -> Iterator[Stack]:
    host = hosts["lab2"]
    base = lab.image_tag()
    # Version 2 of the app, and a build whose entrypoint fails at once (what a missing module does to an app).
    build(V2, f"FROM {base}\nENV APP_VERSION=v2\n")
    build(BROKEN, f'FROM {base}\nENTRYPOINT ["/bin/sh", "-c", "echo broken build >&2; exit 1"]\n')
    query(host, "postgres", sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(SCRATCH)))
    query(host, "postgres", sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SCRATCH)))
    query(host, SCRATCH, "CREATE TABLE marker (v text); INSERT INTO marker VALUES ('before the deploy')")
    image = subprocess.check_output(["docker", "inspect", "--format", "{{.Config.Image}}", f"{host.project}-app-1"])
    known = releases(host)
    state = Stack(host, (host.dir / ".env").read_bytes(), b"", image.decode().strip())
    state.upstream = state.upstream_file.read_bytes()
    yield state
    # Whatever happened, lab2 ends on its image, .env and upstream, with no surge and none of this module's releases.
    subprocess.run(["docker", "rm", "--force", *surge_containers(host)], capture_output=True, check=False)
    if state.upstream_file.read_bytes() != state.upstream:
        state.upstream_file.write_bytes(state.upstream)
        lab.compose(host, "exec", "-T", "nginx", "nginx", "-c", "/etc/nginx/stackops/nginx.conf", "-s", "reload")
    if (host.dir / ".env").read_bytes() != state.env:
        (host.dir / ".env").write_bytes(state.env)
    lab.compose(host, "up", "--detach", "--wait", "app")
    for name in releases(host) - known:
        shutil.rmtree(host.dir / "releases" / name)
    if not known:
        shutil.rmtree(host.dir / "releases", ignore_errors=True)
    for (name,) in query(host, "postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'deploy\\_scratch%'"):
        query(host, "postgres", sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    subprocess.run(["docker", "rmi", V2, BROKEN], capture_output=True, check=False)


def test_deploy_four_step_with_the_site_serving_throughout(stack: Stack) -> None:
    extravars = {"deploy_image": V2, "deploy_migrate_command": MIGRATION, **FAST}
    check, real, _check_again, again = four_step(stack.run, DEPLOY, extravars=extravars)
    # The release directory, the database backup (on by default with a migration), the migration, .env, the app and
    # the release's record.
    assert check.changed() == {"lab2": 6}
    assert markers(stack.host) == ["before the deploy", "migrated by v2"]
    deployed, unchanged = stack.loads
    assert deployed.failures == [], deployed.failures[:5]
    assert moved(deployed.versions, "v1", "v2"), deployed.versions
    assert unchanged.failures == [] and unchanged.versions == ["v2"]
    assert app_version(stack.host) == "v2"

    result = real.artifacts["deploy"]["lab2"]
    assert (result["status"], result["previous_image"], result["image"]) == ("deployed", stack.image, V2)
    assert again.artifacts["deploy"]["lab2"]["status"] == "unchanged"
    release = Path(result["release"])
    assert release.stat().st_mode & 0o777 == 0o700
    files = {p.name: p.stat().st_mode & 0o777 for p in release.iterdir()}
    assert sorted(files) == [".env", "app.conf", "compose.yaml", "database", "release.json", "surge.yaml"]
    # Each copy keeps its file's mode (a rollback puts it back as it was); .env and what the deploy wrote are private.
    assert files[".env"] == files["release.json"] == files["surge.yaml"] == 0o600
    assert (release / ".env").read_bytes() == stack.env
    saved = record(str(release))
    assert (saved["status"], saved["previous"]["image"], saved["image"]) == ("deployed", stack.image, V2)
    assert saved["database_backup"].startswith(str(release / "database"))
    # The upstream is back on the service, byte for byte, and the surge is gone.
    assert stack.upstream_file.read_bytes() == stack.upstream
    assert surge_containers(stack.host) == []
    assert f"APP_IMAGE={V2}\n" in (stack.host.dir / ".env").read_text()
    stack.release = str(release)


def test_a_broken_image_is_undone_by_the_rescue(stack: Stack) -> None:
    env, app = (stack.host.dir / ".env").read_bytes(), app_container(stack.host)
    run = stack.run(DEPLOY, extravars={"deploy_image": BROKEN, **FAST})
    assert run.status == "failed"
    assert run.stats["rescued"] == {"lab2": 1}
    message = run.result("lab2", "Fail with what happened")["msg"]
    assert "failed at Start the surge of the new image on its spare port" in message
    assert "exited with code 1" in message and "It was undone: app runs stackops-lab:deploy-test-v2" in message
    load = stack.loads[-1]
    assert load.failures == [] and load.versions == ["v2"]
    # The stack is as it was: same container, .env and upstream, no surge; the release says what failed.
    assert (app_container(stack.host), (stack.host.dir / ".env").read_bytes()) == (app, env)
    assert stack.upstream_file.read_bytes() == stack.upstream
    assert surge_containers(stack.host) == []
    result = run.artifacts["deploy"]["lab2"]
    assert result["status"] == "failed"
    assert record(result["release"])["status"] == "failed"


def test_rollback_of_image_and_database_with_the_site_serving(stack: Stack) -> None:
    query(stack.host, SCRATCH, "INSERT INTO marker VALUES ('written after the deploy')")
    run = stack.run(
        ROLLBACK,
        extravars={
            "rollback_database": True,
            "rollback_database_confirm": True,
            "rollback_database_stop_services": [],
            **FAST,
        },
    )
    run.assert_ok()
    load = stack.loads[-1]
    assert load.failures == [], load.failures[:5]
    assert moved(load.versions, "v2", "v1"), load.versions
    assert app_version(stack.host) == "v1"
    # The newest deployed release, passing over the broken deploy's failed one.
    result = run.artifacts["rollback"]["lab2"]
    assert result["release"] == Path(stack.release).name
    assert (result["image"]["previous_image"], result["image"]["image"]) == (V2, stack.image)
    assert result["health"] == "ok"
    # The database from before the deploy: neither the migration nor what was written since.
    assert markers(stack.host) == ["before the deploy"]
    assert surge_containers(stack.host) == []
    assert stack.upstream_file.read_bytes() == stack.upstream


def test_config_rollback_restores_env(stack: Stack) -> None:
    env = stack.host.dir / ".env"
    assert env.read_bytes() != stack.env  # the image rollback set APP_IMAGE, which the original .env did not have
    app = app_container(stack.host)
    extravars = {"rollback_release": Path(stack.release).name, "rollback_image": False, "rollback_config": True}
    check = check_run(stack.run, ROLLBACK, extravars=extravars)
    real = stack.run(ROLLBACK, extravars=extravars)
    real.assert_ok()
    assert check.changed() == real.changed() == {"lab2": 1}
    assert env.read_bytes() == stack.env
    assert env.stat().st_mode & 0o777 == 0o600
    assert real.artifacts["rollback"]["lab2"]["config"] == [str(env)]
    # The same image either way: the app's container is the one it was.
    assert app_container(stack.host) == app


def test_requests_refused_before_anything_changes(stack: Stack) -> None:
    before = stack.state()
    run = run_playbook(ROLLBACK, limit="lab2", extravars={"rollback_database": True})
    assert run.status == "failed"
    assert "Nothing was changed. Run again with -e rollback_database_confirm=true" in run.stdout
    # An extra variable beats the role's own: a deploy_image would be what the rollback's deploy puts in place.
    run = run_playbook(ROLLBACK, limit="lab2", extravars={"deploy_image": BROKEN})
    assert run.status == "failed"
    assert f"deploy_image={BROKEN} is set for this run" in " ".join(run.stdout.split())
    run = run_playbook(DEPLOY, limit="lab2", extravars={"deploy_image": V2, "deploy_surge_port": 8000})
    assert run.status == "failed"
    assert "deploy_surge_port 8000 is the service port: the surge needs a spare port." in run.stdout
    assert stack.state() == before
