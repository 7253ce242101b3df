"""The apt_upgrades filter (plugins/filter/apt.py) over real `apt-get -s` output (tests/unit/fixtures/apt/, apt 2.6.1
on Debian 12): what the maintenance window's OS upgrade lists in check mode and then applies."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.stackops.runbooks.plugins.filter.apt import FilterModule, apt_upgrades

FIXTURES = Path(__file__).parent / "fixtures" / "apt"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_the_local_probe_upgrade() -> None:
    assert apt_upgrades(fixture("upgrade-probe.txt")) == [{"name": "stackops-probe", "from": "1.0", "to": "1.1"}]


def test_a_mirror_upgrade_lists_every_package_once_in_order() -> None:
    text = fixture("upgrade-bookworm-139.txt")
    found = apt_upgrades(text)
    assert len(found) == 139 == text.count("\nInst ")
    assert len({u["name"] for u in found}) == 139
    assert found[0] == {"name": "base-files", "from": "12.4+deb12u11", "to": "12.4+deb12u15"}
    # Two origins, and apt's trailing `[]` of a package it upgrades for another's sake.
    assert {"name": "libgcrypt20-dev", "from": "1.10.1-3", "to": "1.10.1-3+deb12u1"} in found
    assert {"name": "liblzma-dev", "from": "5.4.1-1", "to": "5.4.1-1+deb12u2"} in found


def test_only_upgrade_takes_the_dependencies_and_skips_what_is_not_installed() -> None:
    found = apt_upgrades(fixture("only-upgrade-bookworm.txt"))
    assert [u["name"] for u in found] == ["bash", "jq", "libjq1"]
    assert found[1] == {"name": "jq", "from": "1.6-2.1+deb12u1", "to": "1.6-2.1+deb12u3"}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n",
        # A new package (no installed version in brackets) is no upgrade; Conf and Remv lines are not either.
        "Inst libnew1 (2.0 Debian:12.15/oldstable [amd64])\nConf libnew1 (2.0 Debian:12.15/oldstable [amd64])\n",
        "Remv oldpkg [1.0]\n",
        "  Inst indented [1.0] (1.1 x [all])\n",
    ],
)
def test_nothing_that_is_no_upgrade_is_listed(text: str) -> None:
    assert apt_upgrades(text) == []


def test_the_filter_is_registered() -> None:
    assert FilterModule().filters() == {"apt_upgrades": apt_upgrades}
