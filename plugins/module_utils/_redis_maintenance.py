"""redis_maintenance's operations: settings, deleting keys by pattern, flushing, a verified snapshot of the RDB file.

Each operation reads the server, plans its steps (module_utils/_operation) and carries them out unless the run is a
check; the module file holds the options, their documentation and the order the operations run in.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
import tempfile
import time
import typing as t
from collections.abc import Mapping
from dataclasses import dataclass

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
    options_of,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._compose import ProjectRef, service_project
from ansible_collections.stackops.runbooks.plugins.module_utils._files import fsync_file, fsync_path, write_atomic
from ansible_collections.stackops.runbooks.plugins.module_utils._operation import Recorder, Step
from ansible_collections.stackops.runbooks.plugins.module_utils._place import Place
from ansible_collections.stackops.runbooks.plugins.module_utils._redis import RedisError, RedisLogin

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


@dataclass(frozen=True)
class Options:
    """redis_maintenance's options once checked: what the operations read, instead of the module's params."""

    login: RedisLogin
    config: Mapping[str, str]  # names lowercased, values as CONFIG SET takes them (config_texts)
    rewrite_config: bool
    delete_pattern: tuple[str, ...]
    batch_size: int
    flush: str  # db, all, or "" for no flush
    snapshot: bool
    snapshot_dest: str  # "" without a snapshot
    snapshot_timeout: int
    compose_service: str
    compose_project: ProjectRef | None  # the project of compose_service; None on the host


def check_inputs(p: Mapping[str, t.Any]) -> Options:
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
    return options_of(
        Options,
        p,
        login=RedisLogin.of(p),
        config=config_texts(p["config"]),
        flush=p["flush"] or "",
        snapshot_dest=p["snapshot_dest"] or "",
        compose_project=ProjectRef.of_service(p),
    )


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

    def __init__(self, module: t.Any, service: str, compose_project: ProjectRef | None) -> None:
        project = service_project(module, compose_project, service, MaintenanceError) if compose_project else None
        self.place = Place(module, MaintenanceError, project, service)

    @property
    def where(self) -> str:
        return self.place.where

    def copy_out(self, source: str, target: str) -> tuple[str, str]:
        """Copies the server's file to target (which must not exist); (sha256 of the source, of the copy)."""
        if self.place.in_service:
            expected = self.place.sha256(source)
            self.place.copy_out(source, target)
            os.chmod(target, 0o600)
            fsync_path(target)
            return expected, sha256_file(target)
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


# --- the steps --------------------------------------------------------------------------------------------------


# --- the operations ---------------------------------------------------------------------------------------------


def config_steps(wanted: dict[str, str], changes: dict[str, t.Any], rewrite_config: bool) -> list[Step]:
    """The plan of the settings: a CONFIG SET per setting that differs, then CONFIG REWRITE when it is to be kept."""
    steps = [Step(f"CONFIG SET {name} {wanted[name]}", {"name": name}) for name in sorted(changes)]
    return [*steps, Step("CONFIG REWRITE")] if steps and rewrite_config else steps


def apply_config(
    module: t.Any, r: t.Any, o: Options, rec: Recorder, server: dict[str, t.Any], files: t.Callable[[], Files]
) -> None:
    wanted = dict(o.config)
    current, unknown = read_config(r, wanted)
    if unknown:
        raise MaintenanceError(
            f"Redis {server['version']} has no setting {', '.join(sorted(unknown))} (CONFIG GET finds nothing); "
            "fix the name in config. Nothing was set."
        )
    changes = plan_config(wanted, current)
    if changes and o.rewrite_config and not server["config_file"]:
        raise MaintenanceError(
            f"rewrite_config is set but Redis at {o.login.host} was started without a config file, so CONFIG "
            "REWRITE cannot keep the settings. Set rewrite_config: false (and put them in the server's command "
            "line), or start it with a config file. Nothing was set."
        )
    names = sorted(changes)
    rec.result.update(config=current, config_changes=changes, rewritten=bool(changes and o.rewrite_config))
    rec.diff(
        "config",
        {name: current[name] for name in names},
        {name: change["after"] for name, change in changes.items()},
    )
    changed_before = rec.changed
    if not rec.plan(config_steps(wanted, changes, o.rewrite_config)):
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
    # The server's own word decides: a value it stores in another form than asked is no change.
    rec.changed = changed_before or bool(observed)
    rec.result.update(config=after, config_changes=observed)
    rec.after["config"] = {name: after[name] for name in names}
    if not o.rewrite_config:
        fix = (
            "set rewrite_config to write it to the config file"
            if server["config_file"]
            else "the server has no config file, so put it in the server's command line"
        )
        module.warn(f"{', '.join(names)} changed in the running server only, until its next restart; {fix}.")
        return
    rewrite(module, r, server["config_file"], files)


def rewrite(module: t.Any, r: t.Any, config_file: str, files: t.Callable[[], Files]) -> None:
    """CONFIG REWRITE, keeping the file's mode: Redis 7.0 writes it 0644 and it holds the password."""
    place = files().place
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


def delete_keys(r: t.Any, o: Options, rec: Recorder) -> None:
    """The SCAN that finds the keys is the step itself (a dry run in check mode): it is recorded as done."""
    found = delete_matching(r, list(o.delete_pattern), o.batch_size, rec.check)
    rec.result.update(found)
    rec.done(
        [
            Step(f"SCAN MATCH {pattern} COUNT {o.batch_size} + UNLINK", {"pattern": pattern, "keys": count})
            for pattern, count in found["deleted_by_pattern"].items()
            if count
        ]
    )
    rec.diff("matching_keys", found["deleted_by_pattern"], dict.fromkeys(found["deleted_by_pattern"], 0))


def key_count(r: t.Any, scope: str) -> int:
    if scope == "db":
        return int(r.dbsize())
    keyspace = r.info("keyspace")
    return sum(int(v.get("keys", 0)) for k, v in keyspace.items() if k.startswith("db") and isinstance(v, dict))


def flush_steps(scope: str, keys: int) -> list[Step]:
    """FLUSHDB or FLUSHALL, when there is a key to flush."""
    command = "FLUSHDB" if scope == "db" else "FLUSHALL"
    return [Step(f"{command} ASYNC", {"command": command})] if keys else []


def flush(r: t.Any, scope: str, db: int, rec: Recorder) -> None:
    keys = key_count(r, scope)
    rec.result["flushed"] = keys
    label = f"db{db}" if scope == "db" else "all databases"
    rec.diff("flush", {label: keys}, {label: 0})
    steps = flush_steps(scope, keys)
    if not rec.plan(steps):
        return
    command = steps[0].data["command"]
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


def snapshot(r: t.Any, dest: str, timeout: int, rec: Recorder, files: t.Callable[[], Files]) -> None:
    place = files()
    source = rdb_path(r)
    rec.result["snapshot"] = {"source": source, "dest": dest}
    if not rec.plan([Step("BGSAVE", {"source": source})]):
        return
    started = time.monotonic()
    saved = bgsave(r, timeout)
    copy = copy_snapshot(place, source, dest)
    rec.result["snapshot"].update(saved, **copy, duration_s=round(time.monotonic() - started, 3))
