# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""Secrets out of text that is kept or shown: each value in every form a log line or an output can carry it."""

from __future__ import annotations

import re
import typing as t

# What a secret is shown as wherever the collection prints or keeps a value it will not show.
MASK = "********"
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
