"""Fleet scale: health_check, backup and restore_drill over N inventory hosts that are aliases of the lab's stack hosts,
with the wall time and the CPU each run costs, per host, as N grows.

    flock /tmp/team/engine.lock .venv/bin/python bench/fleet.py                       # N = 3, 10, 30, 100
    flock /tmp/team/engine.lock .venv/bin/python bench/fleet.py --sizes 3,10          # quicker
    flock /tmp/team/engine.lock .venv/bin/python bench/fleet.py --sizes 100 --playbooks backup --forks 5,20,50
    flock /tmp/team/engine.lock .venv/bin/python bench/fleet.py --sizes 100 --playbooks backup:5,backup:50,restore_drill

Each alias is an inventory host of its own (fleet001-lab1, fleet002-lab2, ...) whose ansible_host is its lab host's
127.0.2.N address, with its own SSH connection (a ControlPath per alias), its own backup directory and so its own
drill scratch database and work directory (both named after the inventory host by the roles). The generated
inventory (0600, in a private temporary directory under .build/) reuses the lab's group_vars/all.yml and each lab
host's host_vars directory by symlink, so no credential is copied. What is counted where:

    controller  user+sys CPU of ansible-playbook and every process under it, from os.wait4 of the playbook, plus
                the SSH ControlPersist masters it leaves behind (this process is their subreaper: they are
                stopped and reaped after the run, so their share is counted too)
    lab sshd    CPU of the lab hosts' SSH sessions and all they ran (the module processes, docker and compose
                clients), from the cutime+cstime of the lab's sshd listener, which reaps them; the lab is locked
    machine     all CPU time of the machine (/proc/stat) during the run: the two above, dockerd, the containers'
                servers (pg_dump runs inside the postgres container), and whatever else the machine ran

Everything the run leaves on the lab (the aliases' backups, drill work directories, scratch databases) is removed at
the end, and the leftovers checked. Results: bench/results/fleet.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

import psycopg2
import yaml
from psycopg2 import sql

ROOT = Path(__file__).resolve().parent.parent
LAB_INVENTORY = ROOT / "inventories" / "lab"
RESULTS = ROOT / "bench" / "results"
LAB_ROOT = Path(os.environ.get("STACKOPS_LAB_ROOT", "/var/lib/stackops-lab"))
SOURCES = ("lab1", "lab2", "lab3")
DRILL = "drill1"
# Under the lab root of each stack host, beside the lab's own backups/<host>/: removed whole at the end.
BACKUP_ROOT = "backups/fleet-bench"
PLAYBOOKS = ("health_check", "backup", "restore_drill")
TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_CHILD_SUBREAPER = 36


@dataclasses.dataclass(frozen=True)
class Alias:
    name: str
    source: str
    address: str
    backup_dest: str


@dataclasses.dataclass
class Run:
    playbook: str
    hosts: int
    forks: int
    extra: str
    wall_s: float
    controller_cpu_s: float
    lab_sshd_cpu_s: float
    machine_cpu_s: float
    load_start: float
    load_end: float
    rc: int
    failed_hosts: int
    timed_out: bool


def lab_addresses(hosts_yml: Path) -> dict[str, str]:
    """Each lab host's ansible_host, from the lab inventory's hosts.yml (groups nested at any depth)."""

    def walk(group: dict[str, t.Any]) -> t.Iterator[tuple[str, str]]:
        for name, hostvars in (group.get("hosts") or {}).items():
            yield name, str((hostvars or {})["ansible_host"])
        for child in (group.get("children") or {}).values():
            yield from walk(child or {})

    return dict(walk(yaml.safe_load(hosts_yml.read_text())["all"]))


def loopback(address: str) -> str:
    """The address, refused unless it is in 127.0.0.0/8: the bench sends nothing anywhere else."""
    if not ipaddress.ip_address(address).is_loopback or ipaddress.ip_address(address).version != 4:
        raise ValueError(f"{address} is not a 127.0.0.0/8 address; the fleet bench only reaches the lab on loopback")
    return address


def make_aliases(count: int, addresses: dict[str, str], sources: t.Sequence[str] = SOURCES) -> list[Alias]:
    """count aliases spread round-robin over the source hosts, each with its own backup directory."""
    if count < 1:
        raise ValueError("the fleet needs at least one host")
    aliases = []
    for i in range(count):
        source = sources[i % len(sources)]
        name = f"fleet{i + 1:03d}-{source}"
        aliases.append(
            Alias(name, source, loopback(addresses[source]), f"{{{{ stackops_lab_root }}}}/{BACKUP_ROOT}/{name}")
        )
    return aliases


def inventory(aliases: t.Sequence[Alias], drill_address: str) -> dict[str, t.Any]:
    """The generated inventory: group stack of one child group per source host (whose group_vars are the source's
    host_vars, by symlink: its credentials), each alias with its source's compose project; and group drill."""
    children: dict[str, t.Any] = {}
    for alias in aliases:
        # Host variables, since the lab's group_vars/all.yml (a group_vars file) outranks an inventory file's groups.
        children.setdefault(f"fleet_{alias.source}", {"hosts": {}})["hosts"][alias.name] = {
            "ansible_host": alias.address,
            "stackops_compose_project_src": f"{{{{ stackops_lab_root }}}}/hosts/{alias.source}",
            "stackops_compose_project_name": f"stackops-{alias.source}",
            "stackops_backup_dest": alias.backup_dest,
            # A connection of its own, as a real host has: aliases of one address would otherwise share a master.
            "ansible_control_path": f"%(directory)s/{alias.name}",
        }
    return {
        "all": {
            "children": {
                "stack": {"children": children},
                "drill": {"hosts": {DRILL: {"ansible_host": loopback(drill_address)}}},
            }
        }
    }


def write_inventory(directory: Path, aliases: t.Sequence[Alias], drill_address: str, lab: Path = LAB_INVENTORY) -> Path:
    """The inventory directory: hosts.yml (0600), the lab's group_vars/all.yml and each host's host_vars by symlink."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    (directory / "group_vars").mkdir(mode=0o700, exist_ok=True)
    (directory / "host_vars").mkdir(mode=0o700, exist_ok=True)
    hosts = directory / "hosts.yml"
    fd = os.open(hosts, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(inventory(aliases, drill_address), f, sort_keys=False)
    links = {directory / "group_vars" / "all.yml": lab / "group_vars" / "all.yml"}
    links |= {directory / "group_vars" / f"fleet_{s}": lab / "host_vars" / s for s in {a.source for a in aliases}}
    links[directory / "host_vars" / DRILL] = lab / "host_vars" / DRILL
    for link, target in links.items():
        if target.exists():
            link.symlink_to(target.resolve())
    return directory


def recap_failures(output: str) -> int:
    """Hosts of the PLAY RECAP with failed or unreachable tasks."""
    found = re.findall(r"^\S+\s+:\s+ok=\d+.*?unreachable=(\d+)\s+failed=(\d+)", output, re.MULTILINE)
    return sum(1 for unreachable, failed in found if int(unreachable) or int(failed))


def busy_ticks() -> int:
    """The machine's non-idle CPU time since boot, in clock ticks (user, nice, system, irq, softirq, steal)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(fields) - fields[3] - fields[4]


def reaped_ticks(pid: int) -> int:
    """cutime + cstime of a process: the CPU of the children it has reaped."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[13]) + int(fields[14])


def lab_sshd_pid() -> int:
    return int((LAB_ROOT / "ssh" / "sshd.pid").read_text().strip())


def orphans() -> list[int]:
    """Processes reparented to this one (it is their subreaper): the SSH masters a playbook left behind."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == me:
                    found.append(int(entry.name))
    return found


def cpu(usage: t.Any) -> float:
    return float(usage.ru_utime + usage.ru_stime)


def reap_orphans() -> float:
    """Stop the SSH masters left behind and return the CPU they used."""
    total = 0.0
    for pid in orphans():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(ChildProcessError):
            total += cpu(os.wait4(pid, 0)[2])
    return total


def measure(
    argv: list[str], env: dict[str, str], log: Path, timeout: float
) -> tuple[float, float, float, float, int, bool]:
    """Run argv; its wall time, controller CPU, the lab sshd's and the machine's CPU, rc, and whether it timed out."""
    sshd = lab_sshd_pid()
    sshd_before, busy_before, start = reaped_ticks(sshd), busy_ticks(), time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    timed_out, usage, status = False, None, 0
    while usage is None:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            usage = rusage
        elif time.monotonic() - start > timeout:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - start
    controller = cpu(usage) + reap_orphans()
    time.sleep(0.5)  # the listener reaps the sessions the masters just closed
    lab = (reaped_ticks(sshd) - sshd_before) / TICKS
    machine = (busy_ticks() - busy_before) / TICKS
    return wall, controller, lab, machine, proc.returncode, timed_out


def playbook_argv(playbook: str, inv: Path, work: Path, extra: t.Sequence[str]) -> list[str]:
    argv = ["ansible-playbook", "-i", str(inv), f"stackops.runbooks.{playbook}"]
    if playbook == "health_check":
        argv += ["-e", f"health_check_report_dir={work / 'health'}"]
    if playbook == "restore_drill":
        argv += ["-e", f"restore_drill_report_dir={work / 'drill'}"]
    for value in extra:
        argv += ["-e", value]
    return argv


def run_one(playbook: str, aliases: t.Sequence[Alias], forks: int, extra: t.Sequence[str], timeout: float) -> Run:
    addresses = lab_addresses(LAB_INVENTORY / "hosts.yml")
    (ROOT / ".build").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fleet-", dir=ROOT / ".build"))
    try:
        inv = write_inventory(work / "inventory", aliases, addresses[DRILL])
        (work / "cp").mkdir(mode=0o700)
        env = dict(os.environ, ANSIBLE_FORKS=str(forks), ANSIBLE_SSH_CONTROL_PATH_DIR=str(work / "cp"))
        load_start = os.getloadavg()[0]
        log = work / "playbook.log"
        wall, controller, lab, machine, rc, timed_out = measure(
            playbook_argv(playbook, inv, work, extra), env, log, timeout
        )
        output = log.read_text(errors="replace")
        run = Run(
            playbook, len(aliases), forks, " ".join(extra), wall, controller, lab, machine,
            load_start, os.getloadavg()[0], rc, recap_failures(output), timed_out,
        )  # fmt: skip
        if rc:
            RESULTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(log, RESULTS / f"fleet-{playbook}-{len(aliases)}-f{forks}.log")
        return run
    finally:
        shutil.rmtree(work, ignore_errors=True)


def per_host(value: float, hosts: int) -> str:
    return f"{value / hosts:.2f}"


def table(runs: t.Sequence[Run]) -> str:
    """The Markdown table of the runs: totals and per-host figures."""
    lines = [
        "| playbook | N | forks | extra | wall s | wall s/host | controller CPU s | controller CPU s/host "
        "| lab sshd CPU s/host | machine CPU s/host | failed hosts | load 1 min start → end |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in runs:
        note = " (timed out)" if r.timed_out else ""
        lines.append(
            f"| {r.playbook} | {r.hosts} | {r.forks} | {r.extra or '-'} | {r.wall_s:.1f}{note} | "
            f"{per_host(r.wall_s, r.hosts)} | {r.controller_cpu_s:.1f} | {per_host(r.controller_cpu_s, r.hosts)} | "
            f"{per_host(r.lab_sshd_cpu_s, r.hosts)} | {per_host(r.machine_cpu_s, r.hosts)} | {r.failed_hosts} | "
            f"{r.load_start:.2f} → {r.load_end:.2f} |"
        )
    return "\n".join(lines)


def ansible(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ansible", "-i", str(LAB_INVENTORY), *args], capture_output=True, text=True, check=False)


def leftover_databases() -> list[str]:
    """Scratch databases of aliases on the drill host (the drill drops each; any found here are dropped now)."""
    secret = yaml.safe_load((LAB_INVENTORY / "host_vars" / DRILL / "lab_credentials.yml").read_text())
    conn = psycopg2.connect(
        host=lab_addresses(LAB_INVENTORY / "hosts.yml")[DRILL], user="postgres", dbname="postgres",
        password=secret["stackops_pg_password"], connect_timeout=5,
    )  # fmt: skip
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(r"SELECT datname FROM pg_database WHERE datname LIKE 'fleet\_%'")
            names = [row[0] for row in cur.fetchall()]
            for name in names:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            return names
    finally:
        conn.close()


def clean_lab() -> list[str]:
    """Remove what the aliases left on the lab; say what was found besides their backups (nothing, normally)."""
    notes = []
    # One host after another: the lab's hosts share one filesystem, so two removing the same tree would race.
    removed = ansible(
        [
            "--forks=1",
            ",".join(SOURCES),
            "-m",
            "ansible.builtin.file",
            "-a",
            f"path={{{{ stackops_lab_root }}}}/{BACKUP_ROOT} state=absent",
        ]
    )
    if removed.returncode:
        notes.append(f"removing the aliases' backups failed: {removed.stdout[-500:]}")
    work = ansible(
        [DRILL, "-m", "ansible.builtin.shell", "-a", "rm -rvf /var/tmp/stackops-restore-drill/*-fleet[0-9]*-lab*"]
    )
    if work.returncode or "removed" in work.stdout:
        notes.append(f"drill work directories left (now removed): {work.stdout[-500:]}")
    databases = leftover_databases()
    if databases:
        notes.append(f"scratch databases left on {DRILL} (now dropped): {', '.join(databases)}")
    return notes


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def sizes(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def plan(
    counts: t.Sequence[int], playbooks: str, forks: t.Sequence[int], drill_counts: t.Sequence[int] | None = None
) -> list[tuple[int, str, int]]:
    """The runs, in order: (hosts, playbook, forks). A playbook named `name:F` runs with F forks only, one named
    alone once per forks value; restore_drill only at drill_counts (all sizes when None)."""
    runs = []
    for count in counts:
        for item in playbooks.split(","):
            name, colon, own = item.partition(":")
            if name not in PLAYBOOKS:
                raise ValueError(f"{name}: not one of {', '.join(PLAYBOOKS)}")
            if name == "restore_drill" and drill_counts is not None and count not in drill_counts:
                continue
            runs += [(count, name, f) for f in ([int(own)] if colon else forks)]
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--sizes", type=sizes, default=[3, 10, 30, 100], help="fleet sizes (default 3,10,30,100)")
    parser.add_argument(
        "--playbooks",
        default=",".join(PLAYBOOKS),
        help="in this order at each size (a drill needs a backup); name:F runs it with F forks only",
    )
    parser.add_argument("--drill-sizes", type=sizes, help="the sizes that also run restore_drill (default: all)")
    parser.add_argument("--forks", type=sizes, default=[10], help="forks of each run (default 10)")
    parser.add_argument("-e", "--extra", action="append", default=[], help="an extra variable for every run")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per playbook run (default 900)")
    parser.add_argument("--out", type=Path, default=RESULTS / "fleet.json")
    args = parser.parse_args()
    become_subreaper()
    addresses = lab_addresses(LAB_INVENTORY / "hosts.yml")
    runs: list[Run] = []
    try:
        for count, playbook, forks in plan(args.sizes, args.playbooks, args.forks, args.drill_sizes):
            run = run_one(playbook, make_aliases(count, addresses), forks, args.extra, args.timeout)
            runs.append(run)
            print(table([run]).splitlines()[-1], flush=True)
    finally:
        notes = clean_lab()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"runs": [dataclasses.asdict(r) for r in runs], "cleanup": notes}, indent=2))
    print(table(runs))
    for note in notes:
        print(f"cleanup: {note}", file=sys.stderr)
    return 1 if notes or any(r.rc or r.timed_out for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
