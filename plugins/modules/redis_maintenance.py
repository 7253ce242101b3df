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
timings:
  description: Seconds each operation asked for took (config, delete, flush, snapshot), reading and planning included.
  returned: always
  type: dict
  sample: {config: 0.004, snapshot: 1.212}
server:
  description: The server's version, and its config file (empty when it has none).
  returned: always
  type: dict
  sample: {version: 7.0.15, config_file: /etc/redis/redis.conf}
"""

import typing as t

from ansible_collections.stackops.runbooks.plugins.module_utils._common import execute
from ansible_collections.stackops.runbooks.plugins.module_utils._compose import project_argument_spec
from ansible_collections.stackops.runbooks.plugins.module_utils._operation import Recorder
from ansible_collections.stackops.runbooks.plugins.module_utils._redis import (
    RedisError,
    connect,
    connection_argument_spec,
    ensure_libs,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._redis_maintenance import (
    Files,
    MaintenanceError,
    apply_config,
    check_inputs,
    delete_keys,
    flush,
    snapshot,
)


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


def run_module(module: t.Any) -> dict[str, t.Any]:
    o = check_inputs(module.params)
    ensure_libs(module)
    r = connect(o.login, "stackops-redis_maintenance")
    made: list[Files] = []

    def files() -> Files:
        if not made:
            made.append(Files(module, o.compose_service, o.compose_project))
        return made[0]

    rec = Recorder(check=module.check_mode)
    server = {"version": "", "config_file": ""}
    operations: list[tuple[str, t.Any, t.Callable[[], None]]] = [
        ("config", o.config, lambda: apply_config(module, r, o, rec, server, files)),
        ("delete", o.delete_pattern, lambda: delete_keys(r, o, rec)),
        ("flush", o.flush, lambda: flush(r, o.flush, o.login.db, rec)),
        ("snapshot", o.snapshot, lambda: snapshot(r, o.snapshot_dest, o.snapshot_timeout, rec, files)),
    ]
    try:
        info = r.info("server")
        server.update(version=str(info.get("redis_version", "")), config_file=str(info.get("config_file") or ""))
        if o.snapshot:
            files()  # a compose project that is wrong or stopped fails now, before anything changes
        for name, asked, operation in operations:
            if asked:
                with rec.timed(name):
                    operation()
    except RedisError as exc:
        raise MaintenanceError(
            f"Redis at {o.login.host} failed a command: {str(exc).strip() or type(exc).__name__}.",
            commands=rec.commands,
            **rec.result,
        ) from None
    finally:
        r.close()
    return rec.outcome(module._diff, server=server)


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
