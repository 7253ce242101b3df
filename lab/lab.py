"""Build, start, inspect and remove the lab fleet: `python lab/lab.py up|down|status`.

Each host of inventories/lab/hosts.yml becomes a loopback address with an sshd listener (port 2222) and a
Compose v2 project bound to that address with host networking, on an image built locally from Debian packages.
A host's `lab_shape` says which stack: `classic` (postgres, redis, app, nginx) or `sovd` (runbook 001's db, redis,
backend, frontend, nginx, with other database and user names); its `lab_debian` which Debian release the image
comes from: `bookworm` (PostgreSQL 15, Redis 7.0, nginx 1.22) or `trixie` (PostgreSQL 17, Redis 8.0, nginx 1.26).
Everything the lab makes lives under STACKOPS_LAB_ROOT (default /var/lib/stackops-lab), except the generated
credential files of the lab inventory.
`up` is idempotent: on a running, unchanged lab it changes nothing and says so.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import errno
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
LAB = REPO / "lab"
INVENTORY = REPO / "inventories" / "lab"
ROOT = Path(os.environ.get("STACKOPS_LAB_ROOT", "/var/lib/stackops-lab"))
SSH_PORT = 2222
RELEASES = ("bookworm", "trixie")
PG_MAJOR = {"bookworm": "15", "trixie": "17"}
CREDENTIALS = ("POSTGRES_PASSWORD", "APP_DB_PASSWORD", "REDIS_PASSWORD")
CREDENTIALS_FILE = "lab_credentials.yml"
DOCKERD_LOG = Path("/var/log/stackops-lab-dockerd.log")
# No bridge network and no iptables rules: every lab service uses host networking on its loopback address. The lab
# inventory's recover_service_docker_start_command starts the same daemon (tests/unit/test_lab.py).
DOCKERD = ["dockerd", "--bridge=none", "--iptables=false", "--ip-masq=false"]
UP_TIMEOUT = 180


class LabError(Exception):
    """A step of the lab failed; the message says what and what to do."""


@dataclass(frozen=True)
class Shape:
    """A lab stack's layout: its compose template and nginx site, its services and ports, who owns the data."""

    name: str
    template: str
    site: str
    services: tuple[tuple[str, int], ...]
    postgres: str
    app: str
    superuser: str
    db: str
    owner: str
    redis: str = "redis"
    nginx: str = "nginx"

    @property
    def ports(self) -> dict[str, int]:
        return dict(self.services)

    @property
    def site_file(self) -> str:
        """Where the site's configuration lives in the project's nginx/ directory."""
        return f"conf.d/{Path(self.site).name}"


SHAPES = {
    "classic": Shape(
        "classic",
        "compose.yaml.tmpl",
        "nginx/conf.d/app.conf",
        (("postgres", 5432), ("redis", 6379), ("app", 8000), ("nginx", 80)),
        postgres="postgres",
        app="app",
        superuser="postgres",
        db="app",
        owner="app",
    ),
    # Runbook 001's stack: `db`, `backend`, `frontend`, and a non-superuser sovd_user owning sovd_db.
    "sovd": Shape(
        "sovd",
        "sovd/compose.yaml.tmpl",
        "sovd/nginx/sovd.conf",
        (("db", 5432), ("redis", 6379), ("backend", 8000), ("frontend", 5173), ("nginx", 80)),
        postgres="db",
        app="backend",
        superuser="dba",
        db="sovd_db",
        owner="sovd_user",
    ),
}


@dataclass(frozen=True)
class Host:
    name: str
    addr: str
    group: str
    shape: Shape = SHAPES["classic"]
    debian: str = "bookworm"

    @property
    def project(self) -> str:
        return f"stackops-{self.name}"

    @property
    def dir(self) -> Path:
        return ROOT / "hosts" / self.name

    @property
    def seeded(self) -> bool:
        return self.group == "stack"


@dataclass
class Report:
    changes: list[str] = field(default_factory=list)

    def changed(self, what: str) -> None:
        self.changes.append(what)
        say(what)


def say(msg: str) -> None:
    print(f"lab: {msg}", flush=True)


def run(
    argv: list[str],
    *,
    check: bool = True,
    input_text: str | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            argv, input=input_text, capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]} is not installed: run `make lab-up`, which installs it.") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`{' '.join(argv)}` did not finish within {timeout:.0f} s.") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()[-2000:]
        raise LabError(f"`{' '.join(argv)}` failed with exit code {proc.returncode}:\n{detail}")
    return proc


def load_hosts() -> list[Host]:
    inventory = yaml.safe_load((INVENTORY / "hosts.yml").read_text())
    hosts = []
    for group, body in inventory["all"]["children"].items():
        for name, hostvars in (body.get("hosts") or {}).items():
            addr = hostvars["ansible_host"]
            if not addr.startswith("127."):
                raise LabError(f"lab host {name} has address {addr}: lab hosts must be loopback (127.0.0.0/8).")
            shape, debian = hostvars.get("lab_shape", "classic"), hostvars.get("lab_debian", "bookworm")
            if shape not in SHAPES or debian not in RELEASES:
                raise LabError(
                    f"lab host {name}: lab_shape {shape!r} / lab_debian {debian!r}: the lab builds the shapes "
                    f"{', '.join(SHAPES)} from the Debian releases {', '.join(RELEASES)}."
                )
            hosts.append(Host(name, addr, group, SHAPES[shape], debian))
    return hosts


def write_if_changed(path: Path, content: str, mode: int = 0o644) -> bool:
    """Atomically replace path when its content differs; True when written."""
    if path.exists() and path.read_text() == content and (path.stat().st_mode & 0o777) == mode:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


def pid_alive(pidfile: Path, name: str) -> int | None:
    """The pid in pidfile if that process runs and is `name`; a stale file is removed."""
    try:
        pid = int(pidfile.read_text().strip())
        if name in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
            return pid
    except (OSError, ValueError):
        pass
    pidfile.unlink(missing_ok=True)
    return None


# --- host packages, dockerd, image -------------------------------------------------------------------


def ensure_packages() -> None:
    proc = subprocess.run(["bash", str(LAB / "bootstrap.sh")], text=True, check=False)
    if proc.returncode != 0:
        raise LabError("installing the host packages failed (see the lines above).")


def docker_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def ensure_dockerd(report: Report) -> None:
    if docker_answers():
        return
    # Docker's state outlives a dead daemon on these machines: clear pid files of processes that are gone.
    for pidfile, name in (
        (Path("/var/run/docker.pid"), "dockerd"),
        (Path("/var/run/docker/containerd/containerd.pid"), "containerd"),
    ):
        pid_alive(pidfile, name)
    with open(DOCKERD_LOG, "ab") as log:
        subprocess.Popen(
            DOCKERD,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    for _attempt in range(60):
        if docker_answers():
            report.changed("started dockerd")
            return
        time.sleep(1)
    raise LabError(f"dockerd did not answer within 60 s; its log is {DOCKERD_LOG}.")


def image_tag(debian: str = "bookworm") -> str:
    digest = hashlib.sha256()
    packages = "image/packages.txt" if debian == "bookworm" else f"image/packages-{debian}.txt"
    for part in (packages, "image/build.sh"):
        digest.update((LAB / part).read_bytes())
    return f"stackops-lab:{'' if debian == 'bookworm' else f'{debian}-'}{digest.hexdigest()[:12]}"


def ensure_image(debian: str, report: Report) -> str:
    tag = image_tag(debian)
    if run(["docker", "image", "inspect", tag], check=False).returncode == 0:
        return tag
    say(f"building image {tag} from Debian {debian} packages (about a minute)")
    work = ROOT / "build"
    work.mkdir(parents=True, exist_ok=True)
    run(["bash", str(LAB / "image" / "build.sh"), tag, str(work), debian], timeout=900)
    report.changed(f"built image {tag}")
    return tag


def ensure_images(releases: set[str], report: Report) -> dict[str, str]:
    """The image of each Debian release the hosts use, those missing built side by side (mostly downloads)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(releases)) as pool:
        futures = {debian: pool.submit(ensure_image, debian, report) for debian in sorted(releases)}
        return {debian: future.result() for debian, future in futures.items()}


# --- sshd: one listener per host address ---------------------------------------------------------------


def ensure_ssh(hosts: list[Host], report: Report) -> None:
    ssh = ROOT / "ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    os.chmod(ROOT, 0o755)  # noqa: S103 (sshd StrictModes wants root-owned, non-writable parents)
    os.chmod(ssh, 0o700)
    for key in ("id_ed25519", "ssh_host_ed25519_key"):
        if not (ssh / key).exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"stackops-lab {key}", "-f", str(ssh / key)])
            report.changed(f"generated {ssh / key}")
    write_if_changed(ssh / "authorized_keys", (ssh / "id_ed25519.pub").read_text(), 0o600)
    host_key = (ssh / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    known = "".join(f"[{h.addr}]:{SSH_PORT} {' '.join(host_key)}\n" for h in hosts)
    write_if_changed(ssh / "known_hosts", known, 0o600)
    listen = "".join(f"ListenAddress {h.addr}:{SSH_PORT}\n" for h in hosts)
    config = (
        f"# sshd of the stackops lab fleet (written by lab/lab.py)\n{listen}"
        f"HostKey {ssh / 'ssh_host_ed25519_key'}\nPidFile {ssh / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {ssh / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nStrictModes yes\nMaxStartups 100:30:200\nMaxSessions 64\nLogLevel ERROR\n"
        "Subsystem sftp internal-sftp\n"
        # Debian's bash reads ~/.bashrc for every command sshd runs when it is the top-level shell; this machine's
        # root .bashrc runs `pyenv init`, which would cost each Ansible task about 0.1 s of CPU. A lab host is a
        # server, whose root has no such shell set-up: bash started at level 2 leaves .bashrc unread.
        "SetEnv SHLVL=1\n"
    )
    config_changed = write_if_changed(ssh / "sshd_config", config, 0o600)
    pid = pid_alive(ssh / "sshd.pid", "sshd")
    if pid and not config_changed:
        return
    if pid:
        os.kill(pid, signal.SIGTERM)
        for _attempt in range(50):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)
    for h in hosts:
        check_port_free(h.addr, SSH_PORT, "sshd")
    Path("/run/sshd").mkdir(exist_ok=True)
    run(["/usr/sbin/sshd", "-t", "-f", str(ssh / "sshd_config")])
    run(["/usr/sbin/sshd", "-f", str(ssh / "sshd_config")])
    report.changed(f"started sshd on {', '.join(f'{h.addr}:{SSH_PORT}' for h in hosts)}")


def check_port_free(addr: str, port: int, service: str) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((addr, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            owner = run(["ss", "-Hltnp", f"sport = :{port}"], check=False).stdout.strip() or "unknown process"
            raise LabError(
                f"{addr}:{port}, needed by the lab's {service}, is taken by another process "
                f"({owner}). Stop that process, then run `make lab-up` again."
            ) from exc


# --- compose projects ----------------------------------------------------------------------------------


def render(text: str, host: Host, image: str) -> str:
    shape = host.shape
    for key, value in {
        "@ADDR@": host.addr,
        "@PROJECT@": host.project,
        "@HOST@": host.name,
        "@IMAGE@": image,
        "@SUPERUSER@": shape.superuser,
        "@DB@": shape.db,
        "@DB_OWNER@": shape.owner,
    }.items():
        text = text.replace(key, value)
    return text


def compose(
    host: Host, *args: str, check: bool = True, input_text: str | None = None, timeout: float | None = 300
) -> subprocess.CompletedProcess[str]:
    return run(
        ["docker", "compose", "--project-directory", str(host.dir), "-p", host.project, *args],
        check=check,
        input_text=input_text,
        timeout=timeout,
    )


def containers(host: Host) -> dict[str, dict[str, str]]:
    """service -> {id, state, health} of the project's containers, read from `docker ps` (any compose version)."""
    out = run(
        [
            "docker",
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            f"label=com.docker.compose.project={host.project}",
            "--format",
            "{{json .}}",
        ]
    ).stdout
    found = {}
    for line in out.splitlines():
        row = json.loads(line)
        labels = dict(kv.split("=", 1) for kv in row["Labels"].split(",") if "=" in kv)
        status = row["Status"]
        health = (
            "healthy"
            if "(healthy)" in status
            else "unhealthy"
            if "(unhealthy)" in status
            else "starting"
            if "(health: starting)" in status
            else ""
        )
        found[labels.get("com.docker.compose.service", "?")] = {
            "id": row["ID"],
            "state": row["State"],
            "health": health,
        }
    return found


def ensure_certificate(host: Host) -> bool:
    """A self-signed certificate for nginx's TLS listener (valid a year, renewed when under 30 days left), which is
    also the CA file clients trust: lab.crt. True when it was (re)made."""
    tls = host.dir / "nginx" / "tls"
    cert, key = tls / "lab.crt", tls / "lab.key"
    if cert.exists() and key.exists():
        fresh = run(["openssl", "x509", "-checkend", str(30 * 86400), "-noout", "-in", str(cert)], check=False)
        if fresh.returncode == 0:
            return False
    tls.mkdir(parents=True, exist_ok=True)
    run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365",
            "-keyout", str(key), "-out", str(cert),
            "-subj", f"/CN={host.name}.stackops.test",
            "-addext", f"subjectAltName=IP:{host.addr},DNS:{host.name}.stackops.test",
        ]
    )  # fmt: skip
    key.chmod(0o600)
    return True


def drop_project(host: Host) -> None:
    """Remove the project's containers and data (a fresh host, or one whose data an image cannot read)."""
    stale = run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={host.project}"]).stdout
    if stale.split():
        run(["docker", "rm", "-f", "--volumes", *stale.split()])
    shutil.rmtree(host.dir / "data", ignore_errors=True)


def ensure_project(host: Host, image: str, report: Report) -> None:
    env = host.dir / ".env"
    fresh = not env.exists()
    data_version = host.dir / "data" / "postgres" / "PG_VERSION"
    major = data_version.read_text().strip() if data_version.exists() else PG_MAJOR[host.debian]
    if major != PG_MAJOR[host.debian]:
        # PostgreSQL 17 cannot start on a PostgreSQL 15 data directory: a host moved to another release starts anew.
        drop_project(host)
        report.changed(f"{host.name}: removed its PostgreSQL {major} data ({host.debian})")
    if fresh:
        # New credentials mean old data cannot be used: drop anything a previous lab left for this host.
        drop_project(host)
        values = {name: secrets.token_urlsafe(24) for name in CREDENTIALS}
        write_if_changed(env, f"LAB_ADDR={host.addr}\n" + "".join(f"{k}={v}\n" for k, v in values.items()), 0o600)
        report.changed(f"{host.name}: generated credentials")
    shape = host.shape
    app_changed = write_if_changed(host.dir / "app" / "app.py", (LAB / "app/app.py").read_text())
    frontend = LAB / shape.name / "frontend"
    site_files = [write_if_changed(host.dir / "frontend" / f.name, f.read_text()) for f in sorted(frontend.glob("*"))]
    tls_made = ensure_certificate(host)
    site = render((LAB / shape.site).read_text(), host, image)
    main = render((LAB / "nginx/nginx.conf").read_text(), host, image)
    nginx_changed = any(
        [
            write_if_changed(host.dir / "nginx" / shape.site_file, site),
            write_if_changed(host.dir / "nginx" / "nginx.conf", main),
        ]
    )
    flag = host.dir / "nginx" / "maintenance" / "on"
    if flag.exists():
        # A run that ended in maintenance mode (nginx_config's flag file) must not leave the lab answering 503.
        flag.unlink()
        report.changed(f"{host.name}: took nginx out of maintenance mode")
    written = [
        tls_made,
        nginx_changed,
        app_changed,
        *site_files,
        write_if_changed(host.dir / "compose.yaml", render((LAB / shape.template).read_text(), host, image)),
        *(write_if_changed(host.dir / "runtime" / f.name, f.read_text(), 0o755) for f in (LAB / "runtime").iterdir()),
    ]
    (host.dir / "data" / "postgres").mkdir(parents=True, exist_ok=True)
    (host.dir / "data" / "redis").mkdir(parents=True, exist_ok=True)
    if any(written):
        report.changed(f"{host.name}: wrote compose project files in {host.dir}")

    before = containers(host)
    if not all(before.get(s, {}).get("state") == "running" for s in shape.ports):
        for service, port in shape.ports.items():
            if before.get(service, {}).get("state") != "running":
                check_port_free(host.addr, port, f"{host.name} {service}")
    proc = compose(
        host,
        "up",
        "--detach",
        "--wait",
        "--wait-timeout",
        str(UP_TIMEOUT),
        "--remove-orphans",
        check=False,
        timeout=UP_TIMEOUT + 60,
    )
    after = containers(host)
    bad = {s: c for s, c in after.items() if c["state"] != "running" or c["health"] not in ("healthy", "")}
    if proc.returncode != 0 or bad or set(after) != set(shape.ports):
        logs = compose(host, "logs", "--tail", "20", "--no-color", check=False).stdout[-3000:]
        raise LabError(
            f"{host.name}: the compose project did not come up healthy "
            f"(state: {json.dumps(after)}).\n{proc.stderr.strip()[-1500:]}\nLast log lines:\n{logs}"
        )
    app_kept = before.get(shape.app, {}).get("state") == "running" and after[shape.app]["id"] == before[shape.app]["id"]
    if app_changed and app_kept:
        # The app's code is bind-mounted: a running app keeps the old code until it restarts (unless `up` just
        # recreated it).
        compose(host, "up", "--detach", "--wait", "--force-recreate", shape.app, timeout=UP_TIMEOUT)
        after = containers(host)
        report.changed(f"{host.name}: restarted {shape.app} for its new code")
    if (nginx_changed or tls_made) and before.get("nginx", {}).get("state") == "running":
        # nginx reads its configuration and certificate at start and on reload only.
        compose(host, "exec", "-T", "nginx", "nginx", "-c", "/etc/nginx/stackops/nginx.conf", "-s", "reload")
        report.changed(f"{host.name}: reloaded nginx for its new configuration")
    moved = sorted(
        s for s in after if before.get(s, {}).get("id") != after[s]["id"] or before.get(s, {}).get("state") != "running"
    )
    if moved:
        report.changed(f"{host.name}: started {', '.join(moved)}")


def seed(host: Host, report: Report) -> None:
    shape = host.shape
    psql = ["exec", "-T", "-u", "postgres", shape.postgres, "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"]
    psql += ["-U", shape.superuser, "-d", shape.db, "-v", f"owner={shape.owner}"]
    if compose(host, *psql, "-c", "SELECT to_regclass('app.schema_migrations') IS NOT NULL").stdout.strip() != "t":
        compose(host, *psql, input_text=(LAB / "seed" / "app.sql").read_text(), timeout=600)
        report.changed(f"{host.name}: seeded the {shape.db} database")
    redis = [
        "exec",
        "-T",
        shape.redis,
        "sh",
        "-c",
        'REDISCLI_AUTH="$REDIS_PASSWORD" exec redis-cli -h "$LAB_ADDR" "$@"',
        "redis-cli",
    ]
    if compose(host, *redis, "EXISTS", "lab:seeded").stdout.strip() != "1":
        compose(host, *redis, "--pipe", input_text=redis_seed_commands(), timeout=300)
        report.changed(f"{host.name}: seeded Redis with session and cache keys")


def redis_seed_commands() -> str:
    """Redis protocol for the seed keys: sessions (7 days), cached objects (1 day), rate limits, flags."""

    def cmd(*parts: str) -> str:
        return f"*{len(parts)}\r\n" + "".join(f"${len(p.encode())}\r\n{p}\r\n" for p in parts)

    lines = []
    for i in range(1, 5001):
        lines.append(
            cmd(
                "SET",
                f"session:{hashlib.sha256(str(i).encode()).hexdigest()[:40]}",
                json.dumps({"customer_id": i * 3 % 20000 + 1, "csrf": f"t{i}"}),
                "EX",
                "604800",
            )
        )
    for i in range(1, 2001):
        lines.append(cmd("SET", f"cache:customer:{i}", json.dumps({"id": i, "name": f"Customer {i}"}), "EX", "86400"))
    for i in range(1, 301):
        lines.append(cmd("SET", f"ratelimit:198.51.100.{i % 250}:{i}", str(i % 50), "EX", "86400"))
    lines.append(cmd("HSET", "config:feature_flags", "new_checkout", "on", "dark_mode", "off"))
    lines.append(cmd("SET", "lab:seeded", "1"))
    return "".join(lines)


def write_inventory_credentials(host: Host) -> None:
    env = dict(line.split("=", 1) for line in (host.dir / ".env").read_text().splitlines() if "=" in line)
    content = (
        f"---\n# Generated by lab/lab.py from {host.dir / '.env'}: lab credentials, never committed.\n"
        f"stackops_pg_password: {json.dumps(env['POSTGRES_PASSWORD'])}\n"
        f"stackops_pg_app_password: {json.dumps(env['APP_DB_PASSWORD'])}\n"
        f"stackops_redis_password: {json.dumps(env['REDIS_PASSWORD'])}\n"
    )
    write_if_changed(INVENTORY / "host_vars" / host.name / CREDENTIALS_FILE, content, 0o600)


def bring_up_host(host: Host, image: str, report: Report) -> None:
    ensure_project(host, image, report)
    if host.seeded:
        seed(host, report)
    write_inventory_credentials(host)


# --- commands ------------------------------------------------------------------------------------------


def up(hosts: list[Host], only: list[str] | None = None) -> None:
    """Bring the fleet up, or of its stacks just those named (dockerd, the image and sshd are always the fleet's)."""
    started = time.monotonic()
    report = Report()
    unknown = sorted(set(only or ()) - {h.name for h in hosts})
    if unknown:
        raise LabError(f"no lab host {', '.join(unknown)}; the lab's hosts are {', '.join(h.name for h in hosts)}")
    ensure_packages()
    ensure_dockerd(report)
    stacks = [h for h in hosts if not only or h.name in only]
    images = ensure_images({h.debian for h in stacks}, report)
    ensure_ssh(hosts, report)
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(stacks)) as pool:
        for future in [pool.submit(bring_up_host, h, images[h.debian], report) for h in stacks]:
            future.result()
    took = time.monotonic() - started
    if report.changes:
        say(f"lab is up ({len(stacks)} hosts, {len(report.changes)} changes, {took:.1f} s)")
    else:
        say(f"lab is up; nothing changed ({took:.1f} s)")


def down(hosts: list[Host]) -> None:
    if docker_answers():
        for h in hosts:
            if h.dir.exists():
                compose(h, "down", "--volumes", "--remove-orphans", "--timeout", "10", check=False)
        # Containers of lab projects whose directory is already gone.
        stale = run(["docker", "ps", "-aq", "--filter", "label=org.stackops.lab.host"], check=False).stdout.split()
        if stale:
            run(["docker", "rm", "-f", *stale], check=False)
        images = run(["docker", "images", "-q", "stackops-lab"], check=False).stdout.split()
        if images:
            run(["docker", "rmi", "-f", *sorted(set(images))], check=False)
    pid = pid_alive(ROOT / "ssh" / "sshd.pid", "sshd")
    if pid:
        os.kill(pid, signal.SIGTERM)
    shutil.rmtree(ROOT, ignore_errors=True)
    for h in hosts:
        (INVENTORY / "host_vars" / h.name / CREDENTIALS_FILE).unlink(missing_ok=True)
    say(f"lab removed (containers, data, image, sshd, credentials under {ROOT}); dockerd is left running")


def http_json(url: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
    except (OSError, ValueError) as exc:
        return 0, str(exc)


def status(hosts: list[Host]) -> int:
    healthy = True
    dockerd = docker_answers()
    sshd = pid_alive(ROOT / "ssh" / "sshd.pid", "sshd")
    print(
        f"dockerd: {'running' if dockerd else 'NOT RUNNING'}   sshd: {f'pid {sshd}' if sshd else 'NOT RUNNING'}   "
        f"images: {', '.join(image_tag(debian) for debian in RELEASES)}"
    )
    healthy &= dockerd and bool(sshd)
    for h in hosts:
        services = containers(h) if dockerd else {}
        cells = []
        for s in h.shape.ports:
            c = services.get(s)
            cells.append(f"{s}={c['state']}{'/' + c['health'] if c and c['health'] else ''}" if c else f"{s}=absent")
            healthy &= c is not None and c["state"] == "running" and c["health"] in ("healthy", "")
        code, ready = http_json(f"http://{h.addr}/health/ready")
        healthy &= code == 200
        print(f"{h.name:8} {h.addr:11} [{h.group}]  {'  '.join(cells)}  ready: {code} {json.dumps(ready)}")
    return 0 if healthy else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("hosts", nargs="*", help="up: bring up only these hosts' stacks (the tests' repair path)")
    args = parser.parse_args()
    if args.hosts and args.command != "up":
        parser.error(f"only `up` takes host names, not `{args.command}`")
    if os.geteuid() != 0:
        print("lab: ERROR: the lab runs dockerd and sshd and installs packages: run it as root.", file=sys.stderr)
        return 2
    try:
        hosts = load_hosts()
        if args.command == "up":
            up(hosts, args.hosts)
            return 0
        if args.command == "down":
            down(hosts)
            return 0
        return status(hosts)
    except LabError as exc:
        print(f"lab: ERROR: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
