# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""X.509 certificates read without third-party libraries: the validity dates and names the runbooks' `openssl
s_client` / `openssl x509 -enddate` checks look at, from DER (a live server) or PEM (a file nginx references)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import typing as t
from dataclasses import dataclass

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError

PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)
COMMON_NAME = bytes([0x55, 0x04, 0x03])  # OID 2.5.4.3
SEQUENCE, SET, OID, UTC_TIME, GENERALIZED_TIME, EXPLICIT_VERSION = 0x30, 0x31, 0x06, 0x17, 0x18, 0xA0


class CertificateError(StackopsError):
    """Bytes that are not an X.509 certificate."""


@dataclass(frozen=True)
class Certificate:
    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime

    def days_left(self, now: dt.datetime | None = None) -> float:
        now = now or dt.datetime.now(dt.timezone.utc)
        return round((self.not_after - now).total_seconds() / 86400, 1)

    def as_dict(self, now: dt.datetime | None = None) -> dict[str, t.Any]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "not_before": self.not_before.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "not_after": self.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "days_left": self.days_left(now),
        }


def _element(data: bytes, pos: int) -> tuple[int, int, int]:
    """The DER element at pos: (tag, start of its content, end of its content)."""
    if pos + 2 > len(data):
        raise CertificateError("truncated DER element")
    tag, length = data[pos], data[pos + 1]
    start = pos + 2
    if length & 0x80:
        size = length & 0x7F
        if not 0 < size <= 4:
            raise CertificateError("unsupported DER length")
        length = int.from_bytes(data[start : start + size], "big")
        start += size
    if start + length > len(data):
        raise CertificateError("truncated DER element")
    return tag, start, start + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    found, pos = [], start
    while pos < end:
        element = _element(data, pos)
        found.append(element)
        pos = element[2]
    return found


def _time(data: bytes, element: tuple[int, int, int]) -> dt.datetime:
    tag, start, end = element
    text = data[start:end].decode("ascii")
    formats = {UTC_TIME: "%y%m%d%H%M%SZ", GENERALIZED_TIME: "%Y%m%d%H%M%SZ"}
    if tag not in formats:
        raise CertificateError(f"unexpected time tag {tag:#x}")
    return dt.datetime.strptime(text, formats[tag]).replace(tzinfo=dt.timezone.utc)


def _common_name(data: bytes, element: tuple[int, int, int]) -> str:
    """The CN of a Name (SEQUENCE of SET of SEQUENCE {OID, value}); empty when it has none."""
    for _set_tag, set_start, set_end in _children(data, element[1], element[2]):
        for _seq_tag, seq_start, seq_end in _children(data, set_start, set_end):
            parts = _children(data, seq_start, seq_end)
            if len(parts) == 2 and parts[0][0] == OID and data[parts[0][1] : parts[0][2]] == COMMON_NAME:
                return data[parts[1][1] : parts[1][2]].decode("utf-8", "replace")
    return ""


def parse_der(data: bytes) -> Certificate:
    try:
        tag, start, _end = _element(data, 0)
        if tag != SEQUENCE:
            raise CertificateError("not a DER SEQUENCE")
        tbs = _element(data, start)
        fields = _children(data, tbs[1], tbs[2])
        if fields and fields[0][0] == EXPLICIT_VERSION:
            fields = fields[1:]
        # serialNumber, signature, issuer, validity, subject
        issuer, validity, subject = fields[2], fields[3], fields[4]
        not_before, not_after = _children(data, validity[1], validity[2])[:2]
        return Certificate(
            subject=_common_name(data, subject),
            issuer=_common_name(data, issuer),
            not_before=_time(data, not_before),
            not_after=_time(data, not_after),
        )
    except (IndexError, ValueError) as exc:
        raise CertificateError(f"not an X.509 certificate: {exc}") from None


def parse_pem(text: bytes) -> list[Certificate]:
    """Every certificate of a PEM file (a chain has the leaf first)."""
    found = []
    for block in PEM_BLOCK.findall(text):
        try:
            found.append(parse_der(base64.b64decode(b"".join(block.split()), validate=True)))
        except binascii.Error as exc:
            raise CertificateError(f"bad base64 in a PEM certificate: {exc}") from None
    return found
