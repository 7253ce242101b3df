"""Shared pytest setup: the collection on ANSIBLE_COLLECTIONS_PATH and sys.path, the repo's ansible.cfg."""

from __future__ import annotations

import os
import sys

from harness.paths import ANSIBLE_CONFIG, COLLECTIONS

os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", str(COLLECTIONS))
os.environ.setdefault("ANSIBLE_CONFIG", str(ANSIBLE_CONFIG))
sys.path.insert(0, str(COLLECTIONS))
