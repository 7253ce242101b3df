#!/usr/bin/python
# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: redis_maintenance
short_description: Redis settings, pattern deletes, flushes and snapshots, checked and safe to repeat
version_added: 0.1.0
description:
  - Does the runbooks' Redis maintenance over one connection. In this order, each step only when asked for, it
    applies settings (O(config), persisted with O(rewrite_config)), deletes keys by pattern (O(delete_pattern)),
    empties a database or the whole server (O(flush)), and takes a snapshot that it copies off the server and
    checks (O(snapshot)).
  - Every input is checked before anything changes, including the setting names (with C(CONFIG GET)) and the
    confirmation that O(flush) needs. A bad value fails the task with a message that names it, and nothing is
    changed.
  - Settings and deletes report a change only when something changed; a second run reports none. A snapshot is
    an action, taken (and reported as a change) on every run that asks for one.
  - The password reaches Redis through the connection only, never a process argument.
author: stackops developers (@stackops)
extends_documentation_fragment:
  - stackops.runbooks.redis
  - stackops.runbooks.compose.project
  - stackops.runbooks.attributes
options:
  config:
    description:
      - Settings to apply with C(CONFIG SET), by name. Each is compared with what C(CONFIG GET) reports, both
        normalised, and only those that differ are set. Memory sizes may have the units Redis takes (C(64mb) is
        67108864 bytes, also C(kb) and C(gb); C(k), C(m) and C(g) are powers of 1000). YAML booleans become
        C(yes) and C(no); a list is joined with spaces (C(save)).
      - Every name is looked up first; an unknown one fails the task with nothing set. The values are set with one
        C(CONFIG SET), which Redis 7 applies in full or not at all, so a value Redis refuses fails the task with
        nothing set. Before Redis 7 they are set one by one, and those already set are put back when one is
        refused.
      - Secrets (C(requirepass), C(masterauth) and the TLS key passphrases) are refused, because they would show
        in the task's arguments.
      - Where Redis writes its files (C(dir), C(dbfilename), C(appenddirname), C(appendfilename)) is refused.
        Moving them at run time is how an exposed Redis is made to write elsewhere, and Redis 7 refuses it too.
        A value with a control character (a newline) is refused.
    type: dict
    default: {}
  rewrite_config:
    description:
      - When this run changes a setting, write the running configuration to the server's config file with
        C(CONFIG REWRITE), so that the change outlives a restart. The file keeps its mode; Redis 7.0 rewrites it
        as C(0644), which would leave the password in it readable by everyone.
      - A server started without a config file (C(INFO server) shows no C(config_file)) cannot keep settings;
        the task then fails before it sets anything. Without this option, a changed setting gives a warning that
        it lasts until the next restart.
      - Only the settings changed in this run trigger a rewrite. A setting changed earlier without this option is
        not written by a later run in which it does not change.
    type: bool
    default: false
  delete_pattern:
    description:
      - Glob patterns (the syntax of Redis's C(MATCH)) of the keys to delete from database O(db). Keys are found
        with C(SCAN) and removed with C(UNLINK), in batches, never with C(KEYS), which holds the server for the
        whole keyspace. C(UNLINK) frees big values in the background.
      - Keys are bytes throughout, so keys with spaces, quotes, newlines or invalid UTF-8 are deleted as well. A
        key that matches several patterns is counted once, for the first.
      - A pattern of wildcards only (C(*), C(?*), C([a-z]*)), which matches every key or nearly, needs O(confirm);
        O(flush=db) does the same faster.
      - A single string is split at commas, as for any list option; give a pattern with a comma in a YAML list.
    type: list
    elements: str
    default: []
  batch_size:
    description:
      - How many keys each C(SCAN) looks at (its C(COUNT)), and so about how many one C(UNLINK) removes. At the
        default each call held a 2-core server about half a millisecond, and 500,000 keys of 1,000,000 went in
        about 4 seconds. Larger batches finish a little sooner and hold it longer (about 1 ms at 1000, 10 ms at
        10000); smaller ones take longer.
    type: int
    default: 500
  flush:
    description:
      - V(db) empties database O(db) (C(FLUSHDB ASYNC)). V(all) empties every database of the server
        (C(FLUSHALL ASYNC)). Either needs O(confirm=true); an empty database is left alone and reports no change.
    type: str
    choices: [db, all]
  confirm:
    description:
      - Confirms O(flush), and a O(delete_pattern) of wildcards only.
    type: bool
    default: false
  snapshot:
    description:
      - Take a snapshot with C(BGSAVE) and copy the RDB file into O(snapshot_dest). When a background save is
        already running, it waits for that one to end and then starts its own, so the snapshot holds the data as
        it is now.
      - The save counts only when C(rdb_last_bgsave_status) is C(ok) and C(rdb_last_save_time) is not earlier
        than this save's start. A save that fails still answers C(Background saving started), so the reply alone
        proves nothing.
      - The copy is C(<dbfilename without .rdb>-<UTC time>.rdb) with a C(.sha256) file beside it
        (C(sha256sum -c) reads it), both C(0600). It must start with the RDB magic C(REDIS) and have the sha256 of
        the server's file. That file is read inside O(compose_service) with O(compose_project_src) (with
        C(docker compose cp)), otherwise on the managed host, at the C(dir) and C(dbfilename) Redis reports.
    type: bool
    default: false
  snapshot_dest:
    description:
      - The directory on the managed host for the snapshot copies, created C(0700) when missing. Needed with
        O(snapshot).
    type: path
  snapshot_timeout:
    description:
      - Seconds to wait for a background save that is running and then for this run's own.
    type: int
    default: 300
  compose_service:
    description:
      - The compose service that runs Redis, with O(compose_project_src). The RDB file is copied out of it, and
        the config file's mode is kept there.
    type: str
    default: redis
attributes:
  check_mode:
    support: full
    details:
      - Reports the settings that would change, counts the keys that would be deleted or flushed, and says that a
        snapshot would be taken. It sets, deletes and saves nothing.
  diff_mode:
    support: full
    details: The changed settings, the keys matching each pattern, and the keys of a flush, before and after.
  idempotent:
    support: partial
    details: Settings, deletes and flushes change nothing the second time; O(snapshot) takes one on every run.
  platform:
    platforms: posix
notes:
  - The module runs C(CONFIG GET), C(CONFIG SET), C(CONFIG REWRITE), C(INFO), C(TIME), C(SCAN), C(UNLINK),
    C(DBSIZE), C(FLUSHDB), C(FLUSHALL) and C(BGSAVE); an ACL user needs those it uses.
  - In check mode, a setting whose value Redis writes in its own way (such as the letters of
    C(notify-keyspace-events)) may be reported as a change; the real run reports what it observed, and warns
    with the form to write.
seealso:
  - module: stackops.runbooks.redis_health
  - name: SCAN
    description: What SCAN guarantees while keys are added and deleted.
    link: https://redis.io/commands/scan/
  - name: Redis persistence
    description: RDB snapshots and BGSAVE.
    link: https://redis.io/docs/latest/operate/oss_and_stack/management/persistence/
"""

EXAMPLES = r"""
- name: Set the memory limit and eviction policy, and keep them across restarts
  stackops.runbooks.redis_maintenance:
    login_host: 127.0.0.1
    login_password: "{{ redis_password }}"
    config:
      maxmemory: 512mb
      maxmemory-policy: allkeys-lru
    rewrite_config: true

- name: Clear the sessions and the page cache (the runbook's KEYS "session:*" | xargs redis-cli DEL)
  stackops.runbooks.redis_maintenance:
    login_host: 127.0.0.1
    login_password: "{{ redis_password }}"
    delete_pattern: ["session:*", "cache:page:*"]
  register: cleared

- name: Empty database 3
  stackops.runbooks.redis_maintenance:
    login_host: 127.0.0.1
    login_password: "{{ redis_password }}"
    db: 3
    flush: db
    confirm: true

- name: Snapshot the compose redis service and copy the RDB off the container
  stackops.runbooks.redis_maintenance:
    login_host: 127.0.0.1
    login_password: "{{ redis_password }}"
    snapshot: true
    snapshot_dest: /var/backups/redis
    compose_project_src: /srv/app
"""

RETURN = r"""
config:
  description: The settings named in O(config) as Redis reports them after the run (before, in check mode).
  returned: when O(config) is set
  type: dict
  sample: {maxmemory: "67108864", maxmemory-policy: allkeys-lru}
config_changes:
  description: The settings that changed (would change, in check mode), each with its value before and after.
  returned: when O(config) is set
  type: dict
  sample: {maxmemory: {before: "268435456", after: "67108864"}}
rewritten:
  description: Whether C(CONFIG REWRITE) wrote the config file (would, in check mode).
  returned: when O(config) is set
  type: bool
deleted:
  description: Keys deleted (that would be deleted, in check mode) by O(delete_pattern).
  returned: when O(delete_pattern) is set
  type: int
  sample: 1200
deleted_by_pattern:
  description: The keys of RV(deleted) by pattern; a key matching several is counted for the first.
  returned: when O(delete_pattern) is set
  type: dict
  sample: {"session:*": 1200}
deleted_sample:
  description: Up to 10 of those keys, bytes that are not printable UTF-8 written as C(\xNN).
  returned: when O(delete_pattern) is set
  type: list
  elements: str
  sample: ["session:42", "session:\\xff\\x00"]
flushed:
  description: Keys that O(flush) removed (would remove, in check mode).
  returned: when O(flush) is set
  type: int
snapshot:
  description:
    - The snapshot. In check mode only C(source) and C(dest).
    - C(path), C(sha256), C(size) and C(sha256_file) of the copy; C(source), the server's RDB file (in the service
      with O(compose_project_src)); C(started_at) and C(finished_at) of the save; C(duration_s), the whole step
      (waiting, saving, copying), and C(waited_s), spent waiting for a save that was already running;
      C(rdb_last_save_time).
  returned: when O(snapshot) is set
  type: dict
  sample:
    path: /var/backups/redis/dump-20261123T020000Z.rdb
    sha256: 5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef
    size: 1048576
    source: /data/dump.rdb
    duration_s: 0.21
commands:
  description: The commands that changed something (would, in check mode), for the record. Values are as given.
  returned: always
  type: list
  elements: str
  sample: ["CONFIG SET maxmemory 64mb", "CONFIG REWRITE", "SCAN MATCH session:* COUNT 500 + UNLINK"]
server:
  description: The server's version, and its config file (empty when it has none).
  returned: always
  type: dict
  sample: {version: 7.0.15, config_file: /etc/redis/redis.conf}
"""

import hashlib
import os
import posixpath
import re
import shutil
import tempfile
import time
import typing as t
from dataclasses import dataclass, field

from ansible_collections.stackops.runbooks.plugins.module_utils._backup import (
    CHUNK,
    iso,
    new_set_name,
    no_space_hint,
    sha256_file,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._common import (
    StackopsError,
    check_no_control_characters,
    execute,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._compose import (
    ComposeProject,
    project_argument_spec,
    service_project,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._files import fsync_file, fsync_path, write_atomic
from ansible_collections.stackops.runbooks.plugins.module_utils._redis import (
    RedisError,
    connect,
    connection_argument_spec,
    ensure_libs,
)

# Redis's memtoull(): k, m, g are powers of 1000, kb, mb, gb powers of 1024, any case.
UNITS = {"b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}
SIZE = re.compile(r"^(\d+)(b|k|kb|m|mb|g|gb)$", re.IGNORECASE)
# Names whose values are case-sensitive words; other one-word values (policies, yes/no) Redis lowercases.
CASE_SENSITIVE = frozenset(("notify-keyspace-events", "syslog-ident", "masteruser", "cluster-announce-hostname"))
SECRETS = frozenset(("requirepass", "masterauth", "tls-key-file-pass", "tls-client-key-file-pass"))
# Where Redis writes its files: moving them at run time is how a reachable Redis is made to write elsewhere, and
# Redis 7 refuses it (protected configs).
FILE_PLACES = frozenset(("dir", "dbfilename", "appenddirname", "appendfilename"))
RDB_MAGIC = re.compile(rb"^REDIS\d{4}")
# What BGSAVE answers while another child process (a save or an AOF rewrite) runs.
BUSY = ("already in progress", "another child process is active")
SAMPLE = 10


class MaintenanceError(StackopsError):
    """A maintenance step failed or was refused."""


def argument_spec() -> dict[str, t.Any]:
    spec = connection_argument_spec()
    spec.update(project_argument_spec())
    spec.update(
        config={"type": "dict", "default": {}},
        rewrite_config={"type": "bool", "default": False},
        delete_pattern={"type": "list", "elements": "str", "default": []},
        batch_size={"type": "int", "default": 500},
        flush={"type": "str", "choices": ["db", "all"]},
        confirm={"type": "bool", "default": False},
        snapshot={"type": "bool", "default": False},
        snapshot_dest={"type": "path"},
        snapshot_timeout={"type": "int", "default": 300},
        compose_service={"type": "str", "default": "redis"},
    )
    return spec


# --- the pure part: inputs, normalising, the plan -------------------------------------------------------------


def memory_bytes(token: str) -> int | None:
    """`64mb` -> 67108864, as Redis reads a size with a unit; None for anything else."""
    match = SIZE.match(token)
    return int(match.group(1)) * UNITS[match.group(2).lower()] if match else None


def to_text(name: str, value: t.Any) -> str:
    """A `config` value as CONFIG SET takes it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, (int, str)) and not isinstance(v, bool) for v in value):
        return " ".join(str(v) for v in value)
    raise MaintenanceError(
        f"config {name} is {value!r}; give a string, a number, true/false or a list of them (as for save)."
    )


def normalise(name: str, value: str) -> str:
    """A value in the form CONFIG GET reports it: sizes in bytes, words lowercased, single spaces."""
    tokens = []
    for token in value.split():
        size = memory_bytes(token)
        tokens.append(str(size) if size is not None else token)
    text = " ".join(tokens)
    if name not in CASE_SENSITIVE and re.fullmatch(r"[A-Za-z-]+", text):
        text = text.lower()
    return text


def config_texts(config: dict[str, t.Any]) -> dict[str, str]:
    """The `config` option checked and as text, names lowercased (Redis's names are case-insensitive)."""
    texts: dict[str, str] = {}
    for raw, value in config.items():
        name = str(raw).strip().lower()
        if not name or re.search(r"[*?\[\s]", name):
            raise MaintenanceError(f"config name {raw!r} is not a setting name (no spaces or glob characters).")
        if name in FILE_PLACES:
            raise MaintenanceError(
                f"config {name} decides where Redis writes its files; this module does not move them at run time "
                "(Redis 7 refuses it too, as a protected config). Change it in the server's config file."
            )
        if name in SECRETS:
            raise MaintenanceError(
                f"config {name} is a secret, which would show in the task's arguments; this module does not set it. "
                "Change it in the server's config file."
            )
        if name in texts:
            raise MaintenanceError(f"config names {name} twice (names are case-insensitive); keep one.")
        texts[name] = check_no_control_characters(to_text(name, value), f"config {name}")
    return texts


def plan_config(wanted: dict[str, str], current: dict[str, str]) -> dict[str, dict[str, str]]:
    """The settings to set: those whose normalised wanted value differs from what the server reports."""
    return {
        name: {"before": current[name], "after": normalise(name, text)}
        for name, text in wanted.items()
        if normalise(name, text) != normalise(name, current[name])
    }


def literal_characters(pattern: str) -> str:
    """What a Redis glob matches literally: not `*`, `?` nor a `[...]` class; `\\x` is a literal x. An unclosed
    class runs to the end, as in Redis's stringmatchlen."""
    found, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            found.append(pattern[i + 1])
            i += 2
        elif char == "[":
            i += 1
            while i < len(pattern) and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
            i += 1
        elif char in "*?":
            i += 1
        else:
            found.append(char)
            i += 1
    return "".join(found)


def check_inputs(p: dict[str, t.Any]) -> None:
    """Everything that can be judged without the server, so that a bad option changes nothing."""
    if p["batch_size"] < 1:
        raise MaintenanceError(
            f"batch_size must be 1 or more, not {p['batch_size']}; the default 500 suits most servers."
        )
    for pattern in p["delete_pattern"]:
        if not pattern:
            raise MaintenanceError("delete_pattern holds an empty pattern; remove it or give the keys' pattern.")
        if not literal_characters(pattern) and not p["confirm"]:
            raise MaintenanceError(
                f"delete_pattern {pattern!r} has only wildcards, so it deletes every key of database {p['db']} (or "
                "nearly every); add confirm: true if that is meant (flush: db does it faster), or give a narrower "
                "pattern such as 'session:*'."
            )
    if p["flush"] and not p["confirm"]:
        what = f"database {p['db']}" if p["flush"] == "db" else "every database of the server"
        raise MaintenanceError(f"flush={p['flush']} deletes all keys of {what}; set confirm: true to do it.")
    if p["snapshot"]:
        if not p["snapshot_dest"]:
            raise MaintenanceError("snapshot needs snapshot_dest, the directory for the copy of the RDB file.")
        if not os.path.isabs(p["snapshot_dest"]):
            raise MaintenanceError(f"snapshot_dest {p['snapshot_dest']} is not an absolute path; give its full path.")
        if p["snapshot_timeout"] < 1:
            raise MaintenanceError(f"snapshot_timeout must be at least 1 second, not {p['snapshot_timeout']}.")
    elif p["snapshot_dest"]:
        raise MaintenanceError("snapshot_dest is set but snapshot is not; add snapshot: true or drop snapshot_dest.")
    config_texts(p["config"])


def printable(key: bytes) -> str:
    """A key for the result: UTF-8 as text, other bytes and control characters as \\xNN."""
    text = key.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def version_of(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


# --- settings ---------------------------------------------------------------------------------------------------


def read_config(r: t.Any, names: t.Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """The current value of each named setting, and the names the server does not know."""
    current, unknown = {}, []
    for name in names:
        found = r.config_get(name)
        if name in found:
            current[name] = str(found[name])
        elif len(found) == 1:  # an alias (slaveof) answers under the setting's own name (replicaof)
            current[name] = str(next(iter(found.values())))
        else:
            unknown.append(name)
    return current, unknown


def set_config(r: t.Any, wanted: dict[str, str], names: list[str], atomic: bool) -> None:
    """CONFIG SET of the named settings: in one call on Redis 7 (all or nothing), else one by one with the earlier
    ones put back when one is refused."""
    if atomic:
        r.execute_command("CONFIG", "SET", *[part for name in names for part in (name, wanted[name])])
        return
    before, _unknown = read_config(r, names)
    done: list[str] = []
    try:
        for name in names:
            r.execute_command("CONFIG", "SET", name, wanted[name])
            done.append(name)
    except RedisError:
        for name in done:
            r.execute_command("CONFIG", "SET", name, before[name])
        raise


class Files:
    """Where Redis's files are: inside a compose service, or on the managed host."""

    def __init__(self, module: t.Any, params: dict[str, t.Any]) -> None:
        self.module = module
        self.service: str = params["compose_service"]
        self.project: ComposeProject | None = None
        if params["compose_project_src"]:
            self.project = service_project(module, params, self.service, MaintenanceError)

    @property
    def where(self) -> str:
        return f"service {self.service}" if self.project else "this host"

    def run(self, *argv: str) -> str:
        if self.project is None:
            raise MaintenanceError("Running a program next to Redis needs compose_project_src.")
        _rc, out, _err = self.project.call("exec", "-T", self.service, *argv)
        return out

    def mode(self, path: str) -> int | None:
        """The file's permission bits, or None when it cannot be seen from here."""
        if self.project is not None:
            return int(self.run("stat", "-c", "%a", path).strip(), 8)
        try:
            return os.stat(path).st_mode & 0o7777
        except OSError:
            return None

    def chmod(self, path: str, mode: int) -> None:
        if self.project is not None:
            self.run("chmod", f"{mode:o}", path)
        else:
            os.chmod(path, mode)

    def copy_out(self, source: str, target: str) -> tuple[str, str]:
        """Copies the server's file to target (which must not exist); (sha256 of the source, of the copy)."""
        if self.project is None:
            if not os.path.isfile(source):
                raise MaintenanceError(
                    f"Redis's RDB file {source} is not on this host. When Redis runs in a compose service, set "
                    "compose_project_src (and compose_service) to copy it out of the container."
                )
            digest = hashlib.sha256()
            # The open file stays the one saved even when a later save renames a new one over its name.
            with open(source, "rb") as src, open(target, "xb") as dst:
                os.fchmod(dst.fileno(), 0o600)
                for block in iter(lambda: src.read(CHUNK), b""):
                    dst.write(block)
                    digest.update(block)
                fsync_file(dst)
            return digest.hexdigest(), sha256_file(target)
        expected = self.run("sha256sum", source).split()[0]
        self.project.call("cp", f"{self.service}:{source}", target)
        os.chmod(target, 0o600)
        fsync_path(target)
        return expected, sha256_file(target)


# --- the steps --------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """What one module run did (or would do, in check mode)."""

    check: bool
    result: dict[str, t.Any] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    before: dict[str, t.Any] = field(default_factory=dict)
    after: dict[str, t.Any] = field(default_factory=dict)
    changed: bool = False


def apply_config(
    module: t.Any, r: t.Any, p: dict[str, t.Any], run: Run, server: dict[str, t.Any], files: t.Callable[[], Files]
) -> None:
    wanted = config_texts(p["config"])
    current, unknown = read_config(r, wanted)
    if unknown:
        raise MaintenanceError(
            f"Redis {server['version']} has no setting {', '.join(sorted(unknown))} (CONFIG GET finds nothing); "
            "fix the name in config. Nothing was set."
        )
    changes = plan_config(wanted, current)
    if changes and p["rewrite_config"] and not server["config_file"]:
        raise MaintenanceError(
            f"rewrite_config is set but Redis at {p['login_host']} was started without a config file, so CONFIG "
            "REWRITE cannot keep the settings. Set rewrite_config: false (and put them in the server's command "
            "line), or start it with a config file. Nothing was set."
        )
    names = sorted(changes)
    run.result.update(config=current, config_changes=changes, rewritten=bool(changes and p["rewrite_config"]))
    run.before["config"] = {name: current[name] for name in names}
    run.after["config"] = {name: change["after"] for name, change in changes.items()}
    run.commands += [f"CONFIG SET {name} {wanted[name]}" for name in names]
    if not changes:
        return
    run.changed = True
    if run.check:
        if p["rewrite_config"]:
            run.commands.append("CONFIG REWRITE")
        return
    try:
        set_config(r, wanted, names, atomic=version_of(server["version"]) >= (7,))
    except RedisError as exc:
        raise MaintenanceError(
            f"Redis refused the settings: {str(exc).strip()}. Nothing was set; fix the value in config."
        ) from None
    after, _unknown = read_config(r, wanted)
    observed = {
        name: {"before": current[name], "after": after[name]}
        for name in wanted
        if normalise(name, after[name]) != normalise(name, current[name])
    }
    for name in names:
        if normalise(name, after[name]) != normalise(name, wanted[name]):
            module.warn(
                f"Redis reports {name} as {after[name]!r} after it was set to {wanted[name]!r}; write "
                f"{after[name]!r} in config so that check mode sees no change."
            )
    run.changed = bool(observed)
    run.result.update(config=after, config_changes=observed)
    run.after["config"] = {name: after[name] for name in names}
    if not p["rewrite_config"]:
        fix = (
            "set rewrite_config to write it to the config file"
            if server["config_file"]
            else "the server has no config file, so put it in the server's command line"
        )
        module.warn(f"{', '.join(names)} changed in the running server only, until its next restart; {fix}.")
        return
    rewrite(module, r, server["config_file"], files)
    run.commands.append("CONFIG REWRITE")


def rewrite(module: t.Any, r: t.Any, config_file: str, files: t.Callable[[], Files]) -> None:
    """CONFIG REWRITE, keeping the file's mode: Redis 7.0 writes it 0644 and it holds the password."""
    place = files()
    mode = place.mode(config_file)
    try:
        r.execute_command("CONFIG", "REWRITE")
    except RedisError as exc:
        raise MaintenanceError(
            f"The settings are set in the running server, but CONFIG REWRITE of {config_file} failed: "
            f"{str(exc).strip()}. They will be lost at the next restart unless the file is fixed and rewritten."
        ) from None
    if mode is None:
        module.warn(
            f"The mode of Redis's config file {config_file} cannot be seen from this host; CONFIG REWRITE may have "
            "made it readable by all (0644), with the password in it. Check it on the server, or set "
            "compose_project_src when Redis runs in a compose service."
        )
    elif place.mode(config_file) != mode:
        place.chmod(config_file, mode)


def delete_matching(r: t.Any, patterns: list[str], batch_size: int, dry_run: bool) -> dict[str, t.Any]:
    """SCAN MATCH COUNT batch_size through the keyspace once per pattern, UNLINKing each batch found (in the same
    round trip as the next SCAN). A dry run counts instead, each key once."""
    by_pattern: dict[str, int] = {}
    sample: list[str] = []
    seen: set[bytes] = set()
    for pattern in patterns:
        count, cursor = 0, 0
        cursor, keys = r.scan(cursor, match=pattern, count=batch_size)
        while True:
            if dry_run:
                keys = [k for k in keys if k not in seen]
                seen.update(keys)
                count += len(keys)
            if len(sample) < SAMPLE:
                sample += [printable(k) for k in keys[: SAMPLE - len(sample)]]
            if cursor == 0:
                if keys and not dry_run:
                    count += r.unlink(*keys)
                break
            if keys and not dry_run:
                pipe = r.pipeline(transaction=False)
                pipe.unlink(*keys)
                pipe.scan(cursor, match=pattern, count=batch_size)
                removed, (cursor, keys) = pipe.execute()
                count += removed
            else:
                cursor, keys = r.scan(cursor, match=pattern, count=batch_size)
        by_pattern[pattern] = count
    return {"deleted": sum(by_pattern.values()), "deleted_by_pattern": by_pattern, "deleted_sample": sample}


def delete_keys(r: t.Any, p: dict[str, t.Any], run: Run) -> None:
    found = delete_matching(r, p["delete_pattern"], p["batch_size"], run.check)
    run.result.update(found)
    if found["deleted"]:
        run.changed = True
        run.commands += [
            f"SCAN MATCH {pattern} COUNT {p['batch_size']} + UNLINK"
            for pattern, count in found["deleted_by_pattern"].items()
            if count
        ]
    run.before["matching_keys"] = found["deleted_by_pattern"]
    run.after["matching_keys"] = dict.fromkeys(found["deleted_by_pattern"], 0)


def key_count(r: t.Any, scope: str) -> int:
    if scope == "db":
        return int(r.dbsize())
    keyspace = r.info("keyspace")
    return sum(int(v.get("keys", 0)) for k, v in keyspace.items() if k.startswith("db") and isinstance(v, dict))


def flush(r: t.Any, p: dict[str, t.Any], run: Run) -> None:
    scope = p["flush"]
    keys = key_count(r, scope)
    run.result["flushed"] = keys
    label = f"db{p['db']}" if scope == "db" else "all databases"
    run.before["flush"], run.after["flush"] = {label: keys}, {label: 0}
    if not keys:
        return
    command = "FLUSHDB" if scope == "db" else "FLUSHALL"
    run.commands.append(f"{command} ASYNC")
    run.changed = True
    if run.check:
        return
    r.execute_command(command, "ASYNC")
    left = key_count(r, scope)
    if left:
        # Only a writer that added keys right after the flush gets here; say so rather than claim it empty.
        raise MaintenanceError(f"{command} ran, but {left} keys are there again: something writes to it.")


def persistence(r: t.Any) -> dict[str, t.Any]:
    return dict(r.info("persistence"))


def busy(info: dict[str, t.Any]) -> bool:
    return bool(int(info.get("rdb_bgsave_in_progress", 0)) or int(info.get("aof_rewrite_in_progress", 0)))


def wait_idle(r: t.Any, deadline: float, what: str, timeout: int) -> dict[str, t.Any]:
    """Polls INFO persistence until no save or AOF rewrite runs (10 ms at first, then up to 200 ms apart)."""
    pause = 0.01
    while True:
        info = persistence(r)
        if not busy(info):
            return info
        if time.monotonic() >= deadline:
            raise MaintenanceError(
                f"{what} was still running after snapshot_timeout {timeout} s; raise snapshot_timeout (a big "
                "dataset takes longer) or look at the server's log."
            )
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def bgsave(r: t.Any, timeout: int) -> dict[str, t.Any]:
    """BGSAVE, after any save that is running; returns once it finished, proven by INFO persistence."""
    started_wall = time.time()
    deadline = time.monotonic() + timeout
    waited = 0.0
    while True:
        before = time.monotonic()
        info = wait_idle(r, deadline, "A background save (or AOF rewrite) that was already running", timeout)
        waited += time.monotonic() - before
        start = int(r.time()[0])
        try:
            r.execute_command("BGSAVE")
            break
        except RedisError as exc:
            if not any(word in str(exc).lower() for word in BUSY):
                raise MaintenanceError(f"BGSAVE was refused: {str(exc).strip()}") from None
    saves_before = info.get("rdb_saves")
    info = wait_idle(r, deadline, "The BGSAVE this run started", timeout)
    status, saved_at = info.get("rdb_last_bgsave_status"), int(info.get("rdb_last_save_time", 0))
    if status != "ok":
        raise MaintenanceError(
            f"BGSAVE answered that it started, but failed (rdb_last_bgsave_status:{status}): Redis could not write "
            "its RDB file. Its log says why (often a full disk or a directory it may not write). Until a save "
            "succeeds, Redis refuses writes when stop-writes-on-bgsave-error is yes (the default)."
        )
    if saved_at < start or (saves_before is not None and int(info.get("rdb_saves", 0)) <= int(saves_before)):
        raise MaintenanceError(
            f"No save finished after this run's BGSAVE at {start} (rdb_last_save_time {saved_at}); the snapshot "
            "cannot be trusted."
        )
    return {
        "started_at": iso(started_wall),
        "finished_at": iso(time.time()),
        "waited_s": round(waited, 3),
        "rdb_last_save_time": saved_at,
    }


def rdb_path(r: t.Any) -> str:
    found, _unknown = read_config(r, ["dir", "dbfilename"])
    return posixpath.join(found["dir"], found["dbfilename"])


def copy_snapshot(files: Files, source: str, dest: str) -> dict[str, t.Any]:
    """The RDB copied into dest, checked and named (place_snapshot); a file system that refuses it (full, read-only,
    not writable) is a failure that says so."""
    try:
        return place_snapshot(files, source, dest)
    except OSError as exc:
        raise MaintenanceError(
            f"Copying the snapshot into {dest} failed: {exc}{no_space_hint(str(exc), dest)}"
        ) from None
    except StackopsError as exc:
        hint = no_space_hint(str(exc), dest)
        if not hint:
            raise
        raise MaintenanceError(f"Copying the snapshot into {dest} failed: {exc}{hint}", **exc.details) from None


def place_snapshot(files: Files, source: str, dest: str) -> dict[str, t.Any]:
    """The RDB copied into dest, checked (sha256 against the server's file, the RDB magic), then given its name.
    Nothing is left in dest when a check fails."""
    if not os.path.isdir(dest):
        os.makedirs(dest, mode=0o700)
    stem = posixpath.basename(source)
    stem = stem[: -len(".rdb")] if stem.endswith(".rdb") and len(stem) > 4 else stem
    work = tempfile.mkdtemp(prefix=".snapshot-", dir=dest)  # 0700: nothing inside is seen before its chmod
    try:
        staged = os.path.join(work, "dump.rdb")
        expected, copied = files.copy_out(source, staged)
        if expected != copied:
            raise MaintenanceError(
                f"The copy of {source} from {files.where} has sha256 {copied}, the server's file {expected}; it was "
                "removed. A save that replaced the file during the copy does this: run again."
            )
        with open(staged, "rb") as handle:
            head = handle.read(9)
        if not RDB_MAGIC.match(head):
            raise MaintenanceError(
                f"{source} copied from {files.where} does not start with the RDB magic REDIS ({head!r}); it is not "
                "an RDB file, and was not kept."
            )
        name = new_set_name(dest, stem, time.time(), ".rdb")
        final = os.path.join(dest, name)
        sidecar = f"{final}.sha256"
        write_atomic(os.path.join(work, "sha256"), f"{copied}  {name}\n".encode(), mode=0o600)
        os.rename(staged, final)
        os.rename(os.path.join(work, "sha256"), sidecar)
        fsync_path(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"path": final, "sha256": copied, "size": os.path.getsize(final), "sha256_file": sidecar}


def snapshot(r: t.Any, p: dict[str, t.Any], run: Run, files: t.Callable[[], Files]) -> None:
    place = files()
    source = rdb_path(r)
    run.result["snapshot"] = {"source": source, "dest": p["snapshot_dest"]}
    run.commands.append("BGSAVE")
    run.changed = True
    if run.check:
        return
    started = time.monotonic()
    saved = bgsave(r, p["snapshot_timeout"])
    copy = copy_snapshot(place, source, p["snapshot_dest"])
    run.result["snapshot"].update(saved, **copy, duration_s=round(time.monotonic() - started, 3))


# --- the module -------------------------------------------------------------------------------------------------


def run_module(module: t.Any) -> dict[str, t.Any]:
    p = module.params
    check_inputs(p)
    ensure_libs(module)
    r = connect(p, "stackops-redis_maintenance")
    made: list[Files] = []

    def files() -> Files:
        if not made:
            made.append(Files(module, p))
        return made[0]

    run = Run(check=module.check_mode)
    server = {"version": "", "config_file": ""}
    try:
        info = r.info("server")
        server = {"version": str(info.get("redis_version", "")), "config_file": str(info.get("config_file") or "")}
        if p["snapshot"]:
            files()  # a compose project that is wrong or stopped fails now, before anything changes
        if p["config"]:
            apply_config(module, r, p, run, server, files)
        if p["delete_pattern"]:
            delete_keys(r, p, run)
        if p["flush"]:
            flush(r, p, run)
        if p["snapshot"]:
            snapshot(r, p, run, files)
    except RedisError as exc:
        raise MaintenanceError(
            f"Redis at {p['login_host']} failed a command: {str(exc).strip() or type(exc).__name__}.",
            commands=run.commands,
            **run.result,
        ) from None
    finally:
        r.close()
    result: dict[str, t.Any] = {"changed": run.changed, "commands": run.commands, "server": server, **run.result}
    if module._diff:
        result["diff"] = {"before": run.before, "after": run.after}
    return result


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
