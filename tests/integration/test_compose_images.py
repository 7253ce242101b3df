"""compose_images over SSH on lab1, against real registries: Debian's docker-registry on 127.0.2.100:5000 (open) and
:5001 (htpasswd login), both started here with storage in a temporary folder, and a scratch compose project with
one service on a registry image and one on the lab's local image."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import lab
from harness.paths import REPO
from harness.playbook import PlaybookRun, four_step, run_module, run_playbook
from harness.scratch import ScratchProject, new_project, service

pytestmark = pytest.mark.lab_hosts("lab1", "engine")

MODULE = "stackops.runbooks.compose_images"
REGISTRY_BIN = "/usr/bin/docker-registry"
OPEN = "127.0.2.100:5000"
LOCKED = "127.0.2.100:5001"
DOWN = "127.0.2.101:5000"  # nothing listens there
USER, PASSWORD = "ops", "lab-only-registry-pass"
# bcrypt (cost 4, so the registry checks it fast) of PASSWORD; a throw-away test value.
HTPASSWD = f"{USER}:$2b$04$1Pc810QfZpL/FQnsHvcA9eELNl1xmtvbQ5L.WvuqLUgTQkoLW9N5W\n"
PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "compose_images_docker_config.yml"


def docker(*args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=False, timeout=120, env={**os.environ, **(env or {})}
    )
    assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr[-2000:]}"
    return proc.stdout


def image_id(reference: str) -> str | None:
    proc = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", reference], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def push(reference: str, env: dict[str, str] | None = None) -> str:
    """Push and return the digest the registry stored the tag under."""
    found = re.search(r"digest: (sha256:[0-9a-f]{64})", docker("push", reference, env=env))
    assert found, f"no digest in the output of docker push {reference}"
    return found.group(1)


def start_registry(folder: Path, address: str, auth: str = "") -> subprocess.Popen:
    folder.mkdir()
    (folder / "config.yml").write_text(
        f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {folder / 'data'}\n"
        f"http:\n  addr: {address}\n{auth}"
    )
    log = (folder / "registry.log").open("w")
    return subprocess.Popen(
        [REGISTRY_BIN, "serve", str(folder / "config.yml")], stdout=log, stderr=subprocess.STDOUT, cwd=folder
    )


def wait_answering(proc: subprocess.Popen, address: str, log: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"http://{address}/v2/", timeout=1)
            return
        except urllib.error.HTTPError:
            return  # 401: it answers, and asks for a login
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"docker-registry on {address} did not answer:\n{log.read_text()[-2000:]}", pytrace=False)
        time.sleep(0.1)


@dataclass
class Registries:
    repo: str  # a repository name of this run, in both registries
    docker_config: Path  # a DOCKER_CONFIG folder that holds the login of the locked registry
    made: list[str] = field(default_factory=list)  # image ids to remove at the end

    def ref(self, registry: str, tag: str = "1") -> str:
        return f"{registry}/{self.repo}:{tag}"

    def login_env(self) -> dict[str, str]:
        return {"DOCKER_CONFIG": str(self.docker_config)}

    def publish_new(self, reference: str, env: dict[str, str] | None = None) -> tuple[str, str]:
        """Someone pushes a new image to the tag; this host keeps the old one under it (not pulled yet). Returns
        the new image's id and digest."""
        old = image_id(reference)
        assert old
        context = self.docker_config.parent / f"build-{uuid.uuid4().hex[:6]}"
        context.mkdir()
        (context / "Dockerfile").write_text(f"FROM {reference}\nLABEL org.stackops.test.revision={context.name}\n")
        new = docker("build", "--quiet", "--tag", reference, str(context)).strip().splitlines()[-1]
        digest = push(reference, env)
        docker("tag", old, reference)
        docker("rmi", new)
        self.made.append(new)
        return new, digest


@pytest.fixture(scope="module")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registries]:
    if not os.access(REGISTRY_BIN, os.X_OK):
        pytest.fail(f"{REGISTRY_BIN} is missing; `make lab-up` installs Debian's docker-registry.", pytrace=False)
    root = tmp_path_factory.mktemp("registries")
    root.chmod(0o700)
    (root / "htpasswd").write_text(HTPASSWD)
    procs = [
        start_registry(root / "open", OPEN),
        start_registry(
            root / "locked", LOCKED, f"auth:\n  htpasswd:\n    realm: stackops-test\n    path: {root / 'htpasswd'}\n"
        ),
    ]
    config = root / "docker-config"
    config.mkdir(mode=0o700)
    (config / "config.json").write_text(
        json.dumps({"auths": {LOCKED: {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}})
    )
    (config / "config.json").chmod(0o600)
    found = Registries(f"stackops-test/app-{uuid.uuid4().hex[:8]}", config)
    try:
        for proc, name, address in zip(procs, ("open", "locked"), (OPEN, LOCKED)):
            wait_answering(proc, address, root / name / "registry.log")
        # Docker treats all of 127.0.0.0/8 as insecure unless told otherwise: these registries speak plain HTTP.
        assert "127.0.0.0/8" in docker("info", "--format", "{{json .RegistryConfig.InsecureRegistryCIDRs}}")
        found.made.append(tiny_image(found.ref(OPEN), root / "tiny"))
        push(found.ref(OPEN))
        yield found
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for reference in (found.ref(OPEN), found.ref(LOCKED)):
            subprocess.run(["docker", "rmi", reference], capture_output=True, check=False)
        subprocess.run(["docker", "rmi", "--force", *found.made], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def tiny_image(reference: str, context: Path) -> str:
    """A 2 MB image made from the lab image's `sleep` and the libraries it needs: the 490 MB lab image would take
    30 s to push. Returns its id."""
    lab_image = lab.image_tag()
    pairs = docker(
        "run", "--rm", "--network", "none", lab_image, "sh", "-c",
        "for f in /bin/sleep $(ldd /bin/sleep | grep -o '/[^ ]*'); do echo $f $(readlink -f $f); done",
    ).split("\n")  # fmt: skip
    copies = [line.split() for line in pairs if line.strip()]
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {lab_image} AS lab\nFROM scratch\n"
        + "".join(f"COPY --from=lab {source} {dest}\n" for dest, source in copies)
        + 'CMD ["/bin/sleep", "infinity"]\n'
    )
    return docker("build", "--quiet", "--tag", reference, str(context)).strip().splitlines()[-1]


@pytest.fixture(scope="module")
def project(registries: Registries) -> Iterator[ScratchProject]:
    """`app` runs the registry image and `local` the lab's imported image; `built` is build-only and `gone` names
    a registry nobody answers at, both behind profiles and never created."""
    scratch = new_project(lab.ROOT / "scratch")
    scratch.write(
        {
            "app": {"image": registries.ref(OPEN), "network_mode": "none", "restart": "unless-stopped", "init": True},
            "local": service(),
            "built": {"build": {"context": "."}, "profiles": ["built"]},
            "gone": {"image": f"{DOWN}/{registries.repo}:1", "profiles": ["gone"]},
            "private": {"image": registries.ref(LOCKED), "network_mode": "none", "profiles": ["private"]},
        }
    )
    up = scratch.compose("up", "--detach", "app", "local")
    assert up.returncode == 0, up.stderr
    yield scratch
    scratch.compose("--profile", "private", "down", "--timeout", "0")
    scratch.remove()
    shutil.rmtree(scratch.path, ignore_errors=True)


def entries(run: PlaybookRun) -> dict[str, dict]:
    return {entry["service"]: entry for entry in run.result("lab1")["images"]}


@pytest.mark.matrix
def test_report_without_pull_skips_the_local_image(registries: Registries, project: ScratchProject) -> None:
    run = run_module(MODULE, project.args(profiles=["built"]))
    run.assert_ok()
    result = run.result("lab1")
    assert result["changed"] is False
    app, local = entries(run)["app"], entries(run)["local"]
    # Compared with what docker itself says the container runs.
    running = project.ps()["app"][0]["Image"]
    assert app == {
        "service": "app",
        "image": registries.ref(OPEN),
        "registry": True,
        "container_image_id": running,
        "local_image_id": image_id(registries.ref(OPEN)),
        "remote_digest": None,
        "pulled": False,
        "update_available": False,
    }
    assert local["registry"] is False and local["update_available"] is False
    assert local["container_image_id"] == local["local_image_id"] == image_id(lab.image_tag())
    reasons = {entry["service"]: entry["reason"] for entry in result["skipped_services"]}
    assert reasons == {
        "built": "built from its build section on this host; nothing to pull",
        "local": "built or imported on this host (no registry digest); nothing to pull",
    }
    assert (result["pulled"], result["updates"], result["errors"]) == ([], [], [])


def test_new_image_in_the_registry_four_step(registries: Registries, project: ScratchProject) -> None:
    reference = registries.ref(OPEN)
    old = image_id(reference)
    new, digest = registries.publish_new(reference)
    seen: list[tuple[bool, str | None]] = []

    def run_and_look(*args: object, check: bool = False, **kwargs: object) -> PlaybookRun:
        run = run_module(*args, check=check, **kwargs)  # type: ignore[arg-type]
        seen.append((check, image_id(reference)))
        return run

    check, real, check_again, _real_again = four_step(run_and_look, MODULE, project.args(pull=True))
    # Check mode asked the registry and predicted the pull without pulling.
    assert seen[0] == (True, old)
    assert check.changed() == {"lab1": 1}
    predicted = check.result("lab1")
    assert (predicted["pulled"], predicted["updates"]) == ([reference], ["app"])
    assert entries(check)["app"]["remote_digest"] == digest
    # The real run pulled it, and left the container as it was: a deploy is needed, not done.
    assert seen[1] == (False, new)
    result = real.result("lab1")
    assert (result["pulled"], result["updates"]) == ([reference], ["app"])
    app = entries(real)["app"]
    assert (app["container_image_id"], app["local_image_id"], app["remote_digest"]) == (old, new, digest)
    assert project.ps()["app"][0]["Image"] == old
    assert [e["service"] for e in result["skipped_services"]] == ["local"]
    # Nothing new since: still reported as needing a deploy, but nothing pulled.
    again = check_again.result("lab1")
    assert (again["pulled"], again["updates"]) == ([], ["app"])


def test_unreachable_registry(registries: Registries, project: ScratchProject) -> None:
    gone = f"{DOWN}/{registries.repo}:1"
    run = run_module(MODULE, project.args(profiles=["gone"], services=["gone", "app"], pull=True))
    assert run.failed_hosts() == {"lab1"}, run.stdout[-3000:]
    result = run.result("lab1")
    assert "Traceback" not in result["msg"] and "module_stderr" not in result
    assert result["msg"].startswith(f"Pulling failed for 1 image(s): {gone} (service gone): ")
    assert "connection refused" in result["msg"] and "fail_on_pull_error=false" in result["msg"]
    # Reported, not failed: the other image is still handled.
    args = project.args(profiles=["gone"], services=["gone", "app"], pull=True, fail_on_pull_error=False)
    run = run_module(MODULE, args)
    run.assert_ok()
    result = run.result("lab1")
    assert [(e["image"], e["services"]) for e in result["errors"]] == [(gone, ["gone"])]
    assert result["changed"] is False and entries(run)["app"]["pulled"] is False
    assert any(gone in w for w in result["warnings"])
    # Check mode cannot ask the registry: it says so instead of guessing.
    run = run_module(MODULE, project.args(profiles=["gone"], services=["gone"], pull=True), check=True)
    run.assert_ok()
    result = run.result("lab1")
    assert result["changed"] is False
    assert [e["image"] for e in result["errors"]] == [gone]
    assert any("Could not ask the registry" in w and gone in w for w in result["warnings"])
    assert image_id(gone) is None


def test_unknown_service_is_refused(project: ScratchProject) -> None:
    run = run_module(MODULE, project.args(services=["app", "nope"]))
    assert run.failed_hosts() == {"lab1"}
    msg = run.result("lab1")["msg"]
    assert "nope" in msg and "not defined" in msg and "fix `services`" in msg


def test_registry_login_from_dockers_config_never_shown(registries: Registries, project: ScratchProject) -> None:
    """A registry that needs a login, asked (check mode) and pulled from with the credentials of a DOCKER_CONFIG
    folder, as `docker login` leaves them; the password appears nowhere in -vvv output."""
    reference = registries.ref(LOCKED)
    docker("tag", registries.ref(OPEN), reference)
    digest = push(reference, registries.login_env())
    docker("rmi", reference)
    extravars = {
        "project_src": str(project.path),
        "docker_config": str(registries.docker_config),
        "services": ["private"],
        "profiles": ["private"],
    }
    runs = [
        run_playbook(str(PLAYBOOK), check=check, extravars=extravars, limit="lab1", verbosity=3)
        for check in (True, False)
    ]
    for run in runs:
        run.assert_ok()
    check, real = runs
    # Asked with the login in check mode, pulled with it for real (idempotence is the four-step test's part).
    assert check.changed() == real.changed() == {"lab1": 1}
    assert check.result("lab1", "Pull the images")["pulled"] == [reference]
    result = real.result("lab1", "Pull the images")
    assert (result["pulled"], result["images"][0]["remote_digest"]) == ([reference], digest)
    assert image_id(reference) is not None
    secret = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    for run in (check, real):
        shown = run.stdout + json.dumps(run.events)
        assert PASSWORD not in shown and secret not in shown
