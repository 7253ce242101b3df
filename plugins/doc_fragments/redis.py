# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Connection options of every redis_* module (plugins/module_utils/_redis.py connection_argument_spec).
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
    default: 6379
  login_user:
    description:
      - An ACL user name (Redis 6+). Without it the password authenticates the C(default) user.
    type: str
  login_password:
    description:
      - The password. It reaches the server through the library, never through a process argument or the task
        output.
    type: str
  login_unix_socket:
    description:
      - A Unix socket path to connect through instead of O(login_host).
    type: path
  db:
    description:
      - The database index.
    type: int
    default: 0
  tls:
    description:
      - Connect with TLS.
    type: bool
    default: false
  validate_certs:
    description:
      - With O(tls), verify the server's certificate.
    type: bool
    default: true
  ca_certs:
    description:
      - With O(tls), a file of CA certificates to verify the server with.
    type: path
  connect_timeout:
    description:
      - Seconds to wait for the connection and for each reply.
    type: int
    default: 5
requirements:
  - The redis Python library on the managed host (C(python3-redis) or C(redis)).
"""
