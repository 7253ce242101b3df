# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""Secrets out of text that is kept or shown: each value in every form a log line or an output can carry it, and the
passwords of connection strings and URLs. Plain text work only: filters on the controller import it too."""

from __future__ import annotations

import re
import typing as t

# What a secret is shown as wherever the collection prints or keeps a value it will not show.
MASK = "********"
# libpq's connection strings: key = value, the value quoted with backslash escapes or unquoted up to a space.
CONNINFO_PASSWORD = re.compile(
    r"(?i)(?<![\w?&])((?:ssl)?password\s*=\s*)(?:'((?:[^'\\]|\\.)*)(?:'|$)|(?:\\.|[^\s'\\])(?:\\.|[^\s\\])*)"
)
# URIs: the password of the user info (libpq ends the user info at the last @ before the path), and a parameter.
URI_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s/@:]*:)[^\s/]*@")
URI_PASSWORD = re.compile(r"(?i)([?&](?:ssl)?password=)[^&\s#]*")
JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def hex_digits(number: int, width: int) -> str:
    """A pattern for number in hexadecimal, in upper or lower case."""
    return "".join(f"[{digit}{digit.lower()}]" if digit.isalpha() else digit for digit in f"{number:0{width}X}")


def char_forms(char: str) -> str:
    """A pattern for one character of a secret as a log line may carry it: as it is, percent-encoded (URLs and forms,
    which also write a space as +), or JSON-escaped (a backslash before a quote, backslash or slash, control
    characters, any character as \\uXXXX; two of them beyond the BMP)."""
    forms = [re.escape(char), "".join(f"%{hex_digits(byte, 2)}" for byte in char.encode("utf-8"))]
    if char == " ":
        forms.append(r"\+")
    if char in JSON_ESCAPES:
        forms.append(re.escape(JSON_ESCAPES[char]))
    utf16 = char.encode("utf-16-be")
    units = [int.from_bytes(utf16[i : i + 2], "big") for i in range(0, len(utf16), 2)]
    forms.append("".join(rf"\\u{hex_digits(unit, 4)}" for unit in units))
    return f"(?:{'|'.join(forms)})"


def redactor(values: list[str]) -> t.Callable[[str], str]:
    """Replaces each value, in every form a log line can carry it in, by [REDACTED]."""
    # Longest first, so a secret that contains another is replaced whole.
    secrets = sorted({v for v in values if v}, key=len, reverse=True)
    if not secrets:
        return lambda line: line
    pattern = re.compile("|".join("".join(char_forms(char) for char in secret) for secret in secrets))
    return lambda line: pattern.sub("[REDACTED]", line)


def mask_conninfo(found: re.Match[str]) -> str:
    return found.group(1) + (MASK if found.group(2) is None else f"'{MASK}'")


def redact_connection_strings(text: str) -> str:
    """The passwords of libpq connection strings and of URIs in text masked."""
    return URI_PASSWORD.sub(rf"\1{MASK}", URI_USERINFO.sub(rf"\1{MASK}@", CONNINFO_PASSWORD.sub(mask_conninfo, text)))
