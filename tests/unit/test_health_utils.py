"""The verdict shared by the health modules and the health_check role: thresholds, findings, status, fail_on."""

from __future__ import annotations

import pytest

from ansible_collections.stackops.runbooks.plugins.filter.diagnostics import port_owner
from ansible_collections.stackops.runbooks.plugins.filter.health import host_readings, threshold
from ansible_collections.stackops.runbooks.plugins.module_utils import _health as health
from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError
from ansible_collections.stackops.runbooks.plugins.module_utils._redact import redactor
from ansible_collections.stackops.runbooks.plugins.modules.compose_logs import by_container


@pytest.mark.parametrize(
    ("value", "higher_is_worse", "severity"),
    [
        (79, True, None),
        (80, True, "warning"),
        (95, True, "critical"),
        (91, False, None),
        (90, False, "warning"),
        (70, False, "critical"),
        (None, True, None),
    ],
)
def test_rate(value: float | None, higher_is_worse: bool, severity: str | None) -> None:
    warn, crit = (80, 95) if higher_is_worse else (90, 80)
    found = health.rate("x", "reading", value, warn, crit, "%", higher_is_worse=higher_is_worse)
    assert [f.severity for f in found] == ([severity] if severity else [])
    if severity:
        assert found[0].message.startswith(f"reading is {value:g}%, at or")
        assert found[0].threshold == (crit if severity == "critical" else warn)


def test_verdict_is_the_worst_finding() -> None:
    assert health.verdict([]) == "ok"
    findings = [health.Finding("a", "warning", "w"), health.Finding("b", "critical", "c")]
    assert health.verdict(findings) == "critical"


def test_thresholds_merge_and_refuse_unknown_names() -> None:
    assert health.merge_thresholds({"a": 1, "b": 2}, {"b": "5"}) == {"a": 1, "b": 5.0}
    with pytest.raises(StackopsError, match=r"Unknown threshold 'c'; known thresholds: a, b"):
        health.merge_thresholds({"a": 1, "b": 2}, {"c": 1})
    with pytest.raises(StackopsError, match=r"Threshold 'a' must be a number, not 'lots'"):
        health.merge_thresholds({"a": 1}, {"a": "lots"})


@pytest.mark.parametrize(
    ("fail_on", "severity", "fails"),
    [
        ("critical", "critical", True),
        ("critical", "warning", False),
        ("warning", "warning", True),
        ("never", "critical", False),
    ],
)
def test_fail_on(fail_on: str, severity: str, fails: bool) -> None:
    findings = [health.Finding("x", severity, "it is bad.")]
    if fails:
        with pytest.raises(StackopsError, match=rf"Health is {severity}: it is bad\.$"):
            health.finish(findings, {}, fail_on)
    else:
        assert health.finish(findings, {}, fail_on)["status"] == severity


def test_threshold_filter_on_one_reading_and_a_mapping() -> None:
    assert threshold(50, "disk", "disk used", 80, 90, "%") == []
    (finding,) = threshold(93, "disk", "disk used", 80, 90, "%")
    assert finding["severity"] == "critical" and finding["message"].startswith("disk used is 93%")
    found = threshold({"/": 85, "/data": 10}, "disk", "disk used on", 80, 90, "%")
    assert [f["message"][:18] for f in found] == ["disk used on / is "]


# The host probe's output over SSH on the lab (coreutils 9.1), with a mount that does not exist and ssh's trailer.
PROBE = """1795428981.802490008\r
df: /nonexistent: No such file or directory\r
Filesystem     1024-blocks     Used Available Capacity Mounted on\r
/dev/vda         264212084 25102788  81288124      24% /\r
tmpfs                 1024        0      1024       0% /srv/my data\r
MemTotal:       24683656 kB\r
MemAvailable:   23926828 kB\r
Shared connection to 127.0.2.1 closed.\r
"""


def test_host_readings_from_the_probe() -> None:
    readings = host_readings(PROBE)
    assert readings == {
        "clock": 1795428981.802490008,
        "disk_used_pct": {"/": 23.6, "/srv/my data": 0.0},
        "memory_used_pct": 3.1,
    }
    assert host_readings("") == {"clock": None, "disk_used_pct": {}, "memory_used_pct": None}


SS = [  # `ss -Hltnp` on the lab (iproute2 6.1), three hosts' postgres and one wildcard listener
    'LISTEN 0 244 127.0.2.1:5432 0.0.0.0:* users:(("postgres",pid=1201,fd=6))',
    'LISTEN 0 244 127.0.2.2:5432 0.0.0.0:* users:(("postgres",pid=1302,fd=6))',
    'LISTEN 0 511 0.0.0.0:8080 0.0.0.0:* users:(("nginx",pid=7,fd=9),("nginx",pid=8,fd=9))',
]


def test_port_owner() -> None:
    assert port_owner(5432, SS, ["127.0.2.2"]) == "127.0.2.2:5432 by postgres (pid 1302)"
    assert port_owner(5432, SS).count(" by postgres") == 2
    assert port_owner(8080, SS, ["127.0.2.2"]) == "0.0.0.0:8080 by nginx (pid 7), nginx (pid 8)"
    assert port_owner(6379, SS, ["127.0.2.2"]) == "nothing listens"


def test_log_redaction_and_counts() -> None:
    redact = redactor(["s3cr3t", "s3cr3t-longer", ""])
    assert redact("a s3cr3t-longer b s3cr3t") == "a [REDACTED] b [REDACTED]"
    assert by_container(["app-1  | x", "app-1  | y", "db-1  | z", "no prefix"]) == {"app-1": 2, "db-1": 1}
