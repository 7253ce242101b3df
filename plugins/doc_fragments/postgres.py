# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Connection options of every pg_* module (plugins/module_utils/_postgres.py connection_argument_spec),
    # named as community.postgresql names them.
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - The server's host name or address.
    type: str
    default: localhost
  login_port:
    description:
      - The server's port.
    type: int
    default: 5432
  login_user:
    description:
      - The role to connect as.
    type: str
    default: postgres
  login_password:
    description:
      - The role's password. It reaches the server through the library, never through a process argument or
        the task output.
    type: str
  login_unix_socket:
    description:
      - A Unix socket directory to connect through instead of O(login_host).
    type: path
  login_db:
    description:
      - The database to connect to.
    type: str
    default: postgres
  ssl_mode:
    description:
      - libpq's C(sslmode).
    type: str
    default: prefer
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - A file of CA certificates to verify the server with (C(sslrootcert)).
    type: path
  connect_timeout:
    description:
      - Seconds to wait for the connection.
    type: int
    default: 5
requirements:
  - psycopg2 on the managed host (C(python3-psycopg2) or C(psycopg2-binary)).
"""
