# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""Reachability between the services of a compose project (compose_reach): which edges to probe, the probe
commands for the tools a container has, and what their output means. All pure, tested over recorded output."""

from __future__ import annotations

import json
import math
import re
import typing as t
from dataclasses import dataclass

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError, check_port
from ansible_collections.stackops.runbooks.plugins.module_utils._health import Finding

# The tools a probe can use, best first. Each times the connect in the container: python3 with its clock, the
# shells with $EPOCHREALTIME (bash 5, busybox ash) or else `date +%s%N` where date has nanoseconds.
TOOLS = ("python3", "bash", "nc", "busybox")
STATUSES = ("ok", "failed", "cannot_probe", "no_address")
NO_TOOL = (
    "cannot probe: the container of service {service} has none of python3, bash, nc or busybox{why}; add one to its "
    "image (e.g. busybox, or netcat-openbsd from Debian), or probe its edges from another service with `edges`"
)
HOSTNAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})$")
IPV6 = re.compile(r"^[0-9A-Fa-f:.]+$")

# Each probe takes the timeout and then host/port pairs as arguments, never in the script: no value is ever
# parsed by a shell. python3 prints [ms, error] per pair; the shells print rc|start|end|error.
PYTHON = r"""
import json, socket, sys, time
timeout = float(sys.argv[1]); pairs = sys.argv[2:]
for i in range(0, len(pairs), 2):
    started = time.monotonic()
    try:
        socket.create_connection((pairs[i], int(pairs[i + 1])), timeout=timeout).close()
        error = ""
    except Exception as exc:
        error = str(exc) or type(exc).__name__
    print(json.dumps([(time.monotonic() - started) * 1000, error]), flush=True)
"""
BASH = r"""
limit=$1; shift; bound=()
command -v timeout >/dev/null 2>&1 && bound=(timeout "$limit")
while [ $# -ge 2 ]; do
  start=${EPOCHREALTIME:-}
  error=$("${bound[@]}" bash -c 'exec 3<>"/dev/tcp/$1/$2"' bash "$1" "$2" 2>&1 </dev/null); rc=$?
  end=${EPOCHREALTIME:-}
  printf '%s|%s|%s|%s\n' "$rc" "$start" "$end" "$error"
  shift 2
done
"""
# nc -z where nc has it (OpenBSD, traditional, ncat); busybox nc has no -z in Debian's build (1.35: "invalid
# option -- 'z'"), so it connects and runs `true` on the connection instead. Alpine's nc is busybox itself.
NC = r"""
limit=$1; tool=$2; shift 2
while [ $# -ge 2 ]; do
  start=${EPOCHREALTIME:-$(date +%s%N 2>/dev/null)}
  case $tool in
    nc) error=$(nc -v -z -w "$limit" "$1" "$2" 2>&1 </dev/null); rc=$? ;;
    nc-e) error=$(nc -w "$limit" "$1" "$2" -e true 2>&1 </dev/null); rc=$? ;;
    *) error=$(busybox nc -w "$limit" "$1" "$2" -e busybox true 2>&1 </dev/null); rc=$? ;;
  esac
  end=${EPOCHREALTIME:-$(date +%s%N 2>/dev/null)}
  if [ "$tool" = nc ]; then case $error in *"invalid option"*|*"unrecognized option"*) tool=nc-e; continue ;; esac; fi
  printf '%s|%s|%s|%s\n' "$rc" "$start" "$end" "$error"
  shift 2
done
"""
# One exec per source service: look for the tools with `command -v`, say which were found and which one probes, then
# hand the pairs to it. The probe scripts are arguments too (constants of this file), so nothing is quoted.
DISPATCH = r"""
limit=$1; whole=$2; py=$3; bash_script=$4; nc_script=$5; shift 5
found=
for t in python3 bash nc busybox timeout; do command -v "$t" >/dev/null 2>&1 && found="$found $t"; done
echo "tools:$found"
case "$found " in
  *" python3 "*) echo "tool: python3"; exec python3 -c "$py" "$limit" "$@" ;;
  *" bash "*) echo "tool: bash"; exec bash -c "$bash_script" bash "$limit" "$@" ;;
  *" nc "*) echo "tool: nc"; exec sh -c "$nc_script" sh "$whole" nc "$@" ;;
  *" busybox "*) echo "tool: busybox"; exec sh -c "$nc_script" sh "$whole" busybox "$@" ;;
esac
echo "tool: none"
"""


class ReachError(StackopsError):
    """Bad input to compose_reach."""


@dataclass(frozen=True)
class Edge:
    source: str  # the service the probe runs in
    target: str  # a service name, or the address itself for an explicit address
    host: str
    port: int
    origin: str  # depends_on or edges

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Unresolved:
    """An edge to a service whose address is not known: reported, not probed."""

    source: str
    target: str
    origin: str


def check_host(host: str, what: str) -> str:
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if bare != host and IPV6.match(bare) and ":" in bare:
        return bare
    if not HOSTNAME.match(host):
        # A leading `-` would be an option to nc; anything but a name or address has no place in one.
        raise ReachError(
            f"{what}: {host!r} is not a host name or IP address (letters, digits, `.`, `-`, `_`, not starting with "
            "`-`; IPv6 in brackets, as [::1]:5432). Fix it."
        )
    return host


def split_address(text: str, what: str) -> tuple[str | None, int]:
    """'host:port', '[v6]:port' or 'port' (host None)."""
    text = str(text).strip()
    host, _sep, port = text.rpartition(":")
    if not port.isdigit():
        raise ReachError(f"{what}: {text!r} is not host:port or a port (as 127.0.0.1:5432, db:5432 or 5432). Fix it.")
    return (check_host(host, what) if host else None), check_port(int(port), what)


def service_addresses(name: str, spec: dict[str, t.Any], targets: t.Mapping[str, t.Any]) -> list[tuple[str, int]]:
    """Where a service listens, as other services reach it: `targets` first, else the container ports its compose
    definition names (`ports` targets, `expose`) at the service's name, which Compose's DNS resolves on a project
    network. With host networking there is no such name: only `targets` can say where it listens."""
    given = targets.get(name)
    if given is not None:
        found = []
        for item in given if isinstance(given, list) else [given]:
            host, port = split_address(item, f"targets.{name}")
            if host is None and spec.get("network_mode") == "host":
                raise ReachError(
                    f"targets.{name}: {item!r} has no host, and service {name} uses host networking, where its name "
                    "resolves to nothing; give host:port, as 127.0.0.1:{port}."
                )
            found.append((host or name, port))
        return found
    if spec.get("network_mode") in ("host", "none"):
        return []
    ports: list[int] = []
    for item in spec.get("ports") or []:
        if isinstance(item, dict) and item.get("protocol", "tcp") == "tcp" and str(item.get("target", "")).isdigit():
            ports.append(int(item["target"]))
    for item in spec.get("expose") or []:
        number, _sep, protocol = str(item).partition("/")
        if number.isdigit() and protocol in ("", "tcp"):
            ports.append(int(number))
    return [(name, port) for port in sorted(set(ports))]


def plan(
    services: dict[str, t.Any],
    sources: list[str],
    depends_on: bool,
    explicit: list[dict[str, t.Any]],
    targets: t.Mapping[str, t.Any],
) -> tuple[list[Edge], list[Unresolved]]:
    """The edges to probe, without duplicates, in order: each source's depends_on, then the explicit edges."""
    edges: list[Edge] = []
    unresolved: list[Unresolved] = []

    def add(source: str, target: str, origin: str, addresses: list[tuple[str, int]]) -> None:
        if not addresses:
            unresolved.append(Unresolved(source, target, origin))
        for host, port in addresses:
            edge = Edge(source, target, host, port, origin)
            if all((e.source, e.host, e.port) != (source, host, port) for e in edges):
                edges.append(edge)

    if depends_on:
        for source in sources:
            for target in sorted((services[source] or {}).get("depends_on") or {}):
                add(source, target, "depends_on", service_addresses(target, services.get(target) or {}, targets))
    for index, item in enumerate(explicit):
        what = f"edges[{index}]"
        frm, raw = item.get("from"), item.get("to")
        if not isinstance(frm, str) or not isinstance(raw, (str, int)) or set(item) - {"from", "to"}:
            raise ReachError(
                f"{what} is {item!r}; each edge is a dict with `from` (a service) and `to` (a service, "
                "service:port or host:port), as {from: app, to: 127.0.0.1:5432}."
            )
        if frm not in services:
            raise ReachError(
                f"{what}: `from` {frm!r} is not a service of the project (it has: {', '.join(sorted(services))})."
            )
        to = str(raw)
        name, _sep, port = to.rpartition(":")
        if to in services:
            add(frm, to, "edges", service_addresses(to, services[to] or {}, targets))
        elif name in services and port.isdigit():
            number = check_port(int(port), what)
            hosts = sorted({h for h, _p in service_addresses(name, services[name] or {}, targets)})
            if not hosts and (services[name] or {}).get("network_mode") not in ("host", "none"):
                hosts = [name]
            add(frm, name, "edges", [(h, number) for h in hosts])
        else:
            host, number = split_address(to, what)
            if host is None:
                raise ReachError(f"{what}: `to` {to!r} is a port without a host or service; give host:port.")
            add(frm, to, "edges", [(host, number)])
    return edges, unresolved


def parse_run(stdout: str) -> tuple[list[str], str | None, str]:
    """The tools DISPATCH found (in the order of preference), the one that probed (None: none), and its output."""
    lines = stdout.splitlines()
    header = [line for line in lines[:2] if line.startswith(("tools:", "tool:"))]
    found = set(header[0].split(":", 1)[1].split()) if header and header[0].startswith("tools:") else set()
    tool = header[1].split(":", 1)[1].strip() if len(header) == 2 else None
    tools = [name for name in (*TOOLS, "timeout") if name in found]
    return tools, (tool if tool in TOOLS else None), "\n".join(lines[len(header) :])


def probe_argv(tool: str, timeout: float, edges: list[Edge]) -> list[str]:
    """One tool's probe of the edges (python3 alone serves a container without sh)."""
    pairs = [value for e in edges for value in (e.host, str(e.port))]
    if tool == "python3":
        return ["python3", "-c", PYTHON, f"{timeout:g}", *pairs]
    if tool == "bash":
        return ["bash", "-c", BASH, "bash", f"{timeout:g}", *pairs]
    return ["sh", "-c", NC, "sh", whole_seconds(timeout), tool, *pairs]


def run_argv(timeout: float, edges: list[Edge]) -> list[str]:
    """Look for the tools and probe with the best, in one exec."""
    pairs = [value for e in edges for value in (e.host, str(e.port))]
    return ["sh", "-c", DISPATCH, "sh", f"{timeout:g}", whole_seconds(timeout), PYTHON, BASH, NC, *pairs]


def whole_seconds(timeout: float) -> str:
    # nc -w takes whole seconds.
    return str(max(1, math.ceil(timeout)))


def elapsed_ms(start: str, end: str) -> float | None:
    """From bash's EPOCHREALTIME (seconds, with the locale's decimal mark) or `date +%s%N` (nanoseconds; busybox
    builds without %N print it literally)."""
    start, end = start.replace(",", "."), end.replace(",", ".")
    try:
        if "." in start and "." in end:
            return round((float(end) - float(start)) * 1000, 1)
        if start.isdigit() and end.isdigit() and len(start) > 12:
            return round((int(end) - int(start)) / 1e6, 1)
    except ValueError:
        pass
    return None


SHELL_LINE = re.compile(r"^(\d+)\|([^|]*)\|([^|]*)\|(.*)$")


def parse_probe(tool: str, stdout: str, timeout: float, count: int) -> list[tuple[bool, str, float | None]]:
    """(ok, error, ms) per edge, in order; an edge without a line did not run (the probe was cut off). A shell's
    line is rc|start|end|error, and the error may go on over more lines."""
    results: list[tuple[bool, str, float | None]] = []
    if tool == "python3":
        for line in stdout.splitlines():
            if line.strip():
                ms, error = json.loads(line)
                results.append((not error, str(error), round(float(ms), 1)))
    else:
        records: list[list[str]] = []
        for line in stdout.splitlines():
            match = SHELL_LINE.match(line)
            if match:
                records.append(list(match.groups()))
            elif records:
                records[-1].append(line)
        for rc_text, start, end, *lines in records:
            # The first line names the cause; bash goes on with the redirection that failed.
            rc, error = int(rc_text), next((line.strip() for line in lines if line.strip()), "")
            if rc == 124:
                error = f"no answer within {timeout:g} s"
            elif rc != 0 and not error:
                error = f"{tool} could not connect (exit code {rc})"
            results.append((rc == 0, "" if rc == 0 else error, elapsed_ms(start, end)))
    missing = count - len(results)
    return results[:count] + [(False, "the probe ended before this edge", None)] * max(0, missing)


def judge(
    edge: Edge | Unresolved, ok: bool | None, error: str, ms: float | None, tool: str | None
) -> tuple[dict[str, t.Any], Finding | None]:
    """An edge's row of the result and its finding: a failed edge is critical; one not probed (ok None), or to a
    service without a known address, a warning."""
    address = edge.address if isinstance(edge, Edge) else None
    if isinstance(edge, Unresolved):
        status = "no_address"
        error = (
            f"no address known for service {edge.target}: it uses host networking or names no port; "
            f"give it in targets, as {{{edge.target}: 127.0.0.1:PORT}}"
        )
    else:
        status = "cannot_probe" if ok is None else ("ok" if ok else "failed")
    row = {
        "from": edge.source,
        "to": edge.target,
        "address": address,
        "origin": edge.origin,
        "status": status,
        "ok": ok,
        "error": error,
        "time_ms": ms,
        "tool": tool,
    }
    if status == "ok":
        return row, None
    if status == "failed":
        where = address if edge.target == address else f"{edge.target} at {address}"
        return row, Finding("reach", "critical", f"{edge.source} cannot reach {where}: {error}", address)
    return row, Finding("reach", "warning", f"{edge.source} -> {edge.target}: {error}", address)


def exec_failed_to_start(rc: int, stderr: str) -> bool:
    """docker exec could not start the program at all (it is not in the image): 126/127, or the OCI message."""
    return rc in (126, 127) or "executable file not found" in stderr or "no such file or directory" in stderr
