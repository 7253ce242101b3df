"""Command-line entry points of stackops.runbooks: `python -m stackops_cli drill ...` (docs/awx.md)."""

from __future__ import annotations
