# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""nginx_config's operations: the files it manages (dest, with its upstream switch, and the maintenance and WebSocket
snippets), nginx's test of them, the TLS report, and the maintenance flag with its proof from nginx's side.

The options arrive once as a frozen `Options` (`check_inputs`). The planners are pure: what a file should be from
the options and what was read (`plan_dest`, `maintenance_files`, `websocket_files`), and the steps that get it
there (`file_steps`, `flag_steps`). The executors carry out exactly those steps through one Recorder
(module_utils/_operation), which check mode fills with the same steps and stops.
"""

from __future__ import annotations

import grp
import os
import pwd
import typing as t
from collections.abc import Mapping
from dataclasses import dataclass

from ansible_collections.stackops.runbooks.plugins.module_utils._common import options_of
from ansible_collections.stackops.runbooks.plugins.module_utils._compose import ProjectRef
from ansible_collections.stackops.runbooks.plugins.module_utils._files import write_atomic
from ansible_collections.stackops.runbooks.plugins.module_utils._nginx import (
    DEFAULT_PAGE,
    PROBE_HEADER,
    PROBE_PATH,
    Nginx,
    NginxError,
    check_address,
    check_word,
    emerg_lines,
    included,
    maintenance_snippets,
    switch_upstream,
    tls_report,
    validate_candidates,
    warn_lines,
    websocket_snippets,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._nginx_probe import (
    Target,
    probe_targets,
    prove_maintenance,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._operation import Recorder, Step

TIMEOUTS = ("reload_timeout", "websocket_read_timeout", "websocket_send_timeout", "maintenance_probe_timeout")
FLAG_CONTENT = b"maintenance on\n"


@dataclass(frozen=True)
class Options:
    """nginx_config's options once checked: what the operations read, instead of the module's params."""

    dest: str | None
    content: str | None
    src: str | None
    config: str | None
    backup: bool
    mode: int | None  # None keeps the existing mode (0644 for a new file)
    owner: str | None
    group: str | None
    compose_service: str | None
    compose_project: ProjectRef | None  # the project of compose_service; None on the host
    nginx_binary: str
    pid_file: str | None
    reload: bool
    reload_timeout: int
    upstream: str | None
    upstream_servers: tuple[str, ...]
    tls_report: bool
    tls_warning_days: int
    tls_critical_days: int
    websocket: bool
    websocket_dir: str | None
    websocket_read_timeout: int
    websocket_send_timeout: int
    maintenance: str | None  # on, off, or None to leave maintenance alone
    maintenance_dir: str | None
    maintenance_flag: str | None
    maintenance_page: str | None
    retry_after: int
    maintenance_allow: tuple[str, ...]
    maintenance_exempt_paths: tuple[str, ...]
    maintenance_probe_urls: tuple[str, ...]
    maintenance_probe_timeout: int

    @property
    def manages_dest(self) -> bool:
        return self.content is not None or self.src is not None or bool(self.upstream)


def maintenance_state(value: t.Any) -> str | None:
    """on/off from the option; YAML 1.1 reads a bare on/off as a boolean."""
    if value is None:
        return None
    text = {True: "on", False: "off"}.get(value, str(value).strip().lower())
    if text not in ("on", "off"):
        raise NginxError(f"maintenance must be on or off, not {value!r}.")
    return text


def file_mode(value: str | None) -> int | None:
    try:
        mode = int(value, 8) if value else None
    except ValueError:
        raise NginxError(f"mode {value!r} is not an octal mode such as '0644'.") from None
    if mode is not None and not 0 <= mode <= 0o7777:
        raise NginxError(f"mode {value!r} is not a file mode; give one from '0000' to '07777' such as '0644'.")
    return mode


def check_values(p: Mapping[str, t.Any]) -> None:
    """Timeouts, and the values that are written into nginx's configuration as they are."""
    for name in TIMEOUTS:
        if p[name] < 1:
            raise NginxError(f"{name} must be at least 1 second, not {p[name]}.")
    for server in p["upstream_servers"] or []:
        check_word(server, "upstream_servers entry", spaces=True)
    for address in p["maintenance_allow"]:
        check_address(address, "maintenance_allow entry")
    for path in p["maintenance_exempt_paths"]:
        if not path.startswith("/"):
            raise NginxError(f"maintenance_exempt_paths entry {path!r} is not a URI path; start it with /.")
        check_word(path, "maintenance_exempt_paths entry")
        if not p["maintenance_probe_urls"] and PROBE_PATH.startswith(path):
            raise NginxError(
                f"maintenance_exempt_paths entry {path!r} exempts the path the module asks to prove maintenance "
                f"({PROBE_PATH}); give maintenance_probe_urls with a path that is not exempt."
            )


def check_inputs(p: Mapping[str, t.Any]) -> Options:
    """What can be judged from the options alone, before nginx is looked at, so that bad input changes nothing."""
    check_values(p)
    manages_dest = p["content"] is not None or p["src"] is not None or bool(p["upstream"])
    if manages_dest and not p["dest"]:
        raise NginxError("content, src and upstream need dest, the live file to change.")
    if p["dest"] and not manages_dest:
        raise NginxError("dest needs content, src or upstream.")
    maintenance = maintenance_state(p["maintenance"])
    if maintenance is not None and p["retry_after"] < 0:
        raise NginxError(f"retry_after must be 0 or more seconds, not {p['retry_after']}.")
    if not manages_dest and maintenance is None and not p["websocket"] and not p["tls_report"]:
        raise NginxError(
            "Nothing to do: give dest with content, src or upstream, maintenance, websocket or tls_report."
        )
    if manages_dest and p["content"] is not None and p["src"] is not None:
        raise NginxError("Give exactly one of content and src.")
    if p["upstream"] and not p["upstream_servers"]:
        raise NginxError(f"upstream {p['upstream']} needs upstream_servers, the servers to point it at.")
    return options_of(
        Options,
        p,
        mode=file_mode(p["mode"]) if manages_dest else None,
        maintenance=maintenance,
        compose_project=ProjectRef.of_service(p),
    )


def nginx_of(module: t.Any, o: Options) -> Nginx:
    return Nginx(module, o.nginx_binary, o.compose_service, o.compose_project, o.config, o.pid_file)


# --- the files: readings and pure planners ----------------------------------------------------------------------


class Attrs(t.NamedTuple):
    """A file's permission bits and owner, as read."""

    mode: int
    uid: int
    gid: int


class Wanted(t.NamedTuple):
    content: bytes
    mode: int
    uid: int
    gid: int


class Managed(t.NamedTuple):
    """One file this run manages: as it is (None when missing) and as it should be."""

    path: str
    live: bytes | None
    current: Attrs | None
    want: Wanted

    @property
    def content_changed(self) -> bool:
        return self.live != self.want.content

    @property
    def changed(self) -> bool:
        if self.current is None:
            return True
        return self.content_changed or self.current != (self.want.mode, self.want.uid, self.want.gid)


class Required(t.NamedTuple):
    """A managed snippet nginx must read for a feature to work: where, and in which block it is included."""

    feature: str
    path: str
    block: str


class FilePlan(t.NamedTuple):
    """The files this run manages, the maintenance paths (host side, empty without maintenance) and the snippets
    nginx must include."""

    files: list[Managed]
    paths: dict[str, str]
    required: list[Required]

    @property
    def to_test(self) -> dict[str, bytes]:
        return {f.path: f.want.content for f in self.files if f.content_changed}


def read_live(path: str) -> tuple[bytes | None, Attrs | None]:
    try:
        with open(path, "rb") as handle:
            content = handle.read()
        found = os.stat(path)
    except FileNotFoundError:
        return None, None
    return content, Attrs(found.st_mode & 0o7777, found.st_uid, found.st_gid)


def read_file(path: str, option: str, hint: str = "") -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise NginxError(f"Cannot read {option} {path}: {exc.strerror}{hint}.") from None


def owner_ids(owner: str | None, group: str | None) -> tuple[int | None, int | None]:
    """The uid and gid of the owner and group asked for (None when not asked)."""
    try:
        return (
            pwd.getpwnam(owner).pw_uid if owner else None,
            grp.getgrnam(group).gr_gid if group else None,
        )
    except KeyError as exc:
        raise NginxError(f"No such user or group on the host: {exc.args[0]}; fix owner or group.") from None


def plan_dest(
    o: Options, source: bytes | None, live: bytes | None, current: Attrs | None, ids: tuple[int | None, int | None]
) -> Wanted:
    """dest as it should be: the given content (`source`, None without content or src), with upstream the live
    file (or that content) with that upstream's servers replaced; mode and owner as asked, else as they are."""
    if source is not None:
        content = source
    elif o.upstream and live is not None:
        content = live
    else:
        raise NginxError("Give exactly one of content and src.")
    if o.upstream:
        content = switch_upstream(content.decode(), o.upstream, list(o.upstream_servers)).encode()
    mode = o.mode if o.mode is not None else (current.mode if current else 0o644)
    uid, gid = ids
    return Wanted(
        content,
        mode,
        uid if uid is not None else (current.uid if current else 0),
        gid if gid is not None else (current.gid if current else 0),
    )


def snippet(path: str, content: bytes) -> Managed:
    """A managed snippet: root's, world-readable (nginx's workers read the page)."""
    live, current = read_live(path)
    return Managed(path, live, current, Wanted(content, 0o644, 0, 0))


def maintenance_paths(o: Options, folder: str) -> dict[str, str]:
    return {
        "flag": o.maintenance_flag or os.path.join(folder, "on"),
        "page": os.path.join(folder, "page.html"),
        "http": os.path.join(folder, "http.conf"),
        "server": os.path.join(folder, "server.conf"),
    }


def maintenance_files(
    o: Options, paths: Mapping[str, str], page: bytes, to_nginx: t.Callable[[str], str]
) -> dict[str, bytes]:
    """The page and the two snippets, by host path. The flag's and the page's paths as nginx sees them are written
    into its configuration as they are."""
    snippets = maintenance_snippets(
        check_word(to_nginx(paths["flag"]), "maintenance_flag"),
        check_word(to_nginx(paths["page"]), "maintenance_dir"),
        o.retry_after,
        list(o.maintenance_allow),
        list(o.maintenance_exempt_paths),
    )
    return {
        paths["page"]: page,
        paths["http"]: snippets["http.conf"].encode(),
        paths["server"]: snippets["server.conf"].encode(),
    }


def websocket_files(o: Options, folder: str) -> dict[str, tuple[bytes, str]]:
    """The WebSocket snippets by host path, each with the block that must include it."""
    snippets = websocket_snippets(o.websocket_read_timeout, o.websocket_send_timeout)
    return {
        os.path.join(folder, name): (snippets[name].encode(), block)
        for name, block in (("http.conf", "http"), ("location.conf", "location"))
    }


def beside_config(nginx: Nginx, given: str | None, name: str) -> str:
    """A managed folder: the one given, or `name` beside nginx's main config (as a host path)."""
    return given or nginx.to_host(os.path.join(os.path.dirname(nginx.config), name))


def plan_files(o: Options, nginx: Nginx) -> FilePlan:
    """Reads the files this run manages and plans each; bad input is refused here, before any change."""
    files: list[Managed] = []
    if o.manages_dest and o.dest:
        source = (
            o.content.encode()
            if o.content is not None
            else read_file(o.src, "src", "; give a file on the managed host")
            if o.src is not None
            else None
        )
        live, current = read_live(o.dest)
        files.append(Managed(o.dest, live, current, plan_dest(o, source, live, current, owner_ids(o.owner, o.group))))
    paths: dict[str, str] = {}
    required: list[Required] = []
    if o.maintenance is not None:
        paths = maintenance_paths(o, beside_config(nginx, o.maintenance_dir, "maintenance"))
        page = read_file(o.maintenance_page, "maintenance_page") if o.maintenance_page else DEFAULT_PAGE.encode()
        files += [snippet(path, content) for path, content in maintenance_files(o, paths, page, nginx.to_nginx).items()]
        required += [Required("maintenance", paths["http"], "http"), Required("maintenance", paths["server"], "server")]
    if o.websocket:
        for path, (content, block) in websocket_files(o, beside_config(nginx, o.websocket_dir, "websocket")).items():
            files.append(snippet(path, content))
            required.append(Required("websocket", path, block))
    if o.dest and not os.path.isdir(os.path.dirname(o.dest)):
        raise NginxError(f"The directory of dest {o.dest} does not exist.")
    return FilePlan(files, paths, required)


def file_steps(files: list[Managed], backup_of: str | None, reload: bool) -> list[Step]:
    """The plan of the files: each that differs in content, mode or owner is written (dest backed up first when
    asked), then nginx is reloaded when a content changed."""
    steps = [
        Step(f"write {f.path}" + (" (backup first)" if f.path == backup_of else ""), {"file": f})
        for f in files
        if f.changed
    ]
    if reload and any(f.content_changed for f in files):
        steps.append(Step("reload nginx and wait for new workers", {"reload": True}))
    return steps


def flag_steps(flag: Managed, on: bool) -> list[Step]:
    """The maintenance switch: the flag appears (on) or goes (off), when it is not so already."""
    if (flag.current is not None) == on:
        return []
    return [Step(f"{'create' if on else 'remove'} {flag.path}", {"on": on})]


def diffs(files: list[Managed]) -> list[dict[str, str]]:
    return [
        {
            "before": (f.live or b"").decode(errors="replace"),
            "after": f.want.content.decode(errors="replace"),
            "before_header": f.path,
            "after_header": f.path,
        }
        for f in files
        if f.content_changed
    ]


# --- nginx's test and the TLS report ----------------------------------------------------------------------------


def include_problem(dump: str, need: Required, path: str) -> str | None:
    """What to add when an `nginx -T` dump shows that nginx does not read a snippet (path as nginx sees it)."""
    if included(dump, path):
        return None
    stem = os.path.splitext(os.path.basename(path))[0]
    return (
        f"nginx's configuration does not include the {need.feature} {need.block} snippet {path}: add "
        f"`include {path};` to the {need.block} block where it applies (a glob such as "
        f"`include {os.path.dirname(path)}/{stem}*.conf;` also works before the file exists)."
    )


def check_included(dump: str, nginx: Nginx, required: list[Required]) -> None:
    for need in required:
        problem = include_problem(dump, need, nginx.to_nginx(need.path))
        if problem is not None:
            raise NginxError(problem)


def validate(nginx: Nginx, plan: FilePlan, rec: Recorder) -> str:
    """nginx -T of the configuration with the candidates in place (the result gets validated and the test output);
    the managed snippets must be read. Returns nginx's dump of the configuration."""
    to_test = plan.to_test
    ok, output, dump = validate_candidates(nginx, to_test)
    rec.result.update(validation_output=output, validated=bool(to_test) and ok)
    if not ok:
        reason = next(iter(emerg_lines(output)), output.splitlines()[-1] if output else "no output")
        names = ", ".join(sorted(to_test)) or "configuration"
        raise NginxError(f"nginx -t rejected the new {names}, left as it was: {reason}", **rec.result)
    for line in warn_lines(output) if to_test else []:
        nginx.module.warn(f"nginx -t accepted the new configuration with a warning: {line}")
    if plan.required:
        check_included(dump, nginx, plan.required)
    return dump


def report_certificates(module: t.Any, nginx: Nginx, dump: str, o: Options) -> list[dict[str, t.Any]]:
    certificates = tls_report(nginx, dump, o.tls_warning_days, o.tls_critical_days)
    for cert in certificates:
        if cert["severity"] in ("warning", "critical"):
            detail = cert.get("error") or f"{cert['days_left']} days left (expires {cert['not_after']})"
            module.warn(f"TLS certificate {cert['path']} is {cert['severity']}: {detail}")
    return certificates


# --- the executors ------------------------------------------------------------------------------------------------


def write(dest: str, want: Wanted, backup: bool = False) -> str | None:
    """dest replaced atomically by the wanted file (and backed up first, when asked and its content differs); the
    backup's path."""
    try:
        return write_atomic(dest, want.content, mode=want.mode, uid=want.uid, gid=want.gid, backup=backup)
    except OSError as exc:
        raise NginxError(f"Could not write {dest}: {exc}") from None


def restore(item: Managed) -> None:
    """A file as it was before this run: gone, or back with its content, mode and owner."""
    if item.live is None or item.current is None:
        if os.path.lexists(item.path):
            os.unlink(item.path)
    else:
        write(item.path, Wanted(item.live, *item.current))


def apply_files(nginx: Nginx, o: Options, plan: FilePlan, rec: Recorder) -> None:
    """Write the changed files (with a backup of dest when asked), reload, and roll back when nginx did not apply
    them."""
    backup_of = o.dest if o.backup else None
    steps = file_steps(plan.files, backup_of, o.reload)
    if not rec.plan(steps):
        return
    written = [step.data["file"] for step in steps if "file" in step.data]
    for item in written:
        os.makedirs(os.path.dirname(item.path), exist_ok=True)
        backup = write(item.path, item.want, backup=item.path == backup_of)
        if backup is not None:
            rec.result["backup_file"] = backup
    if not any("reload" in step.data for step in steps):
        return
    applied, emerg = nginx.reload(o.reload_timeout)
    if not applied:
        rollback(nginx, written, o.reload_timeout)
        reason = "; ".join(emerg) or f"no new worker processes within {o.reload_timeout} s"
        raise NginxError(
            f"nginx accepted the new {', '.join(sorted(plan.to_test))} but did not apply it ({reason}). The previous "
            "files are back and nginx was reloaded with them.",
            **{**rec.result, "changed": False, "emerg": emerg},
        )
    rec.result["applied"] = True


def rollback(nginx: Nginx, files: list[Managed], timeout: int) -> None:
    for item in files:
        restore(item)
    applied, emerg = nginx.reload(timeout, stop_on_emerg=False)
    if not applied:
        raise NginxError(
            "nginx did not apply the new configuration, and after putting the previous files back it did not "
            f"reload either ({'; '.join(emerg) or 'no new workers'}). nginx still runs its old workers; check it by "
            "hand."
        )


# --- maintenance: the flag and its proof --------------------------------------------------------------------------


class Switch(t.NamedTuple):
    """The maintenance switch as planned: the flag as it is, and where the proof asks."""

    flag: Managed
    on: bool
    targets: list[Target]


def plan_switch(o: Options, plan: FilePlan, dump: str) -> Switch:
    targets = probe_targets(dump, list(o.maintenance_probe_urls))
    live, current = read_live(plan.paths["flag"])
    return Switch(
        Managed(plan.paths["flag"], live, current, Wanted(FLAG_CONTENT, 0o644, 0, 0)), o.maintenance == "on", targets
    )


def switch_maintenance(o: Options, switch: Switch, rec: Recorder, files_changed: bool) -> None:
    """Maintenance on: the flag file appears at once (a rename); off: it goes. nginx tests it on every request.
    Then the state is proven from nginx's side, also when nothing had to be switched."""
    flipped = rec.plan(flag_steps(switch.flag, switch.on))
    if rec.check:
        return
    if flipped:
        if switch.on:
            write(switch.flag.path, switch.flag.want)
        else:
            os.unlink(switch.flag.path)
    prove(o, switch, flipped, rec, files_changed)


def prove(o: Options, switch: Switch, flipped: bool, rec: Recorder, files_changed: bool) -> None:
    """Ask nginx until it answers as the state needs (the result gets the answers and, after a switch, when the
    proof held). When it does not, the switch is undone and the task fails with what nginx answered."""
    flag, on = switch.flag, switch.on
    at, answers, problems = prove_maintenance(
        switch.targets, on, o.retry_after, list(o.maintenance_exempt_paths), o.maintenance_probe_timeout
    )
    rec.result["maintenance_probe"] = answers
    if at is not None:
        if flipped:
            rec.result["maintenance_switched_at"] = at
        return
    if flipped:
        restore(flag)
    state = "on" if on else "off"
    undone = (
        f"The switch was undone: the flag {flag.path} is {'back' if flag.live is not None else 'removed'} and the "
        "site answers as before."
        if flipped
        else f"Nothing was switched (the flag {flag.path} was already {'there' if on else 'absent'})."
    )
    causes = (
        f"nginx's worker user cannot read the flag {flag.path} (every directory above it must be searchable by "
        f"that user, for example www-data); the server block answering that address does not include the "
        f"maintenance server snippet; another server block answers that address (a default_server or the same "
        f"server_name elsewhere), or maintenance_probe_urls names the wrong place"
        if on
        else f"the flag {flag.path} is still seen, or the site itself answers with the maintenance page"
    )
    if any("error" in answer for answer in answers):
        causes += (
            "; an address nginx listens on is not reachable from this host as it is (a container's port published "
            "under another number): give maintenance_probe_urls"
        )
    raise NginxError(
        f"nginx does not answer with maintenance {state} within {o.maintenance_probe_timeout} s, asked "
        f"with the {PROBE_HEADER} header: {'; '.join(problems)}. {undone} Likely causes: {causes}.",
        **{**rec.result, "changed": files_changed, "maintenance": "off" if on == flipped else "on"},
    )
