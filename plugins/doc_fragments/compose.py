# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Options of every compose_* module (plugins/module_utils/_compose.py common_argument_spec).
    DOCUMENTATION = r"""
options:
  project_src:
    description:
      - The compose project's directory on the managed host. Relative O(files) and O(env_files) are resolved here.
    type: path
    required: true
  files:
    description:
      - Compose files, in order (C(-f)). When not set, Compose finds C(compose.yaml), C(compose.yml),
        C(docker-compose.yaml) or C(docker-compose.yml) in O(project_src).
    type: list
    elements: path
  project_name:
    description:
      - The project name (C(-p)). Default is what Compose derives (the C(name) key or the directory name).
    type: str
  env_files:
    description:
      - Environment files for variable interpolation (C(--env-file)).
    type: list
    elements: path
  profiles:
    description:
      - Profiles to enable (C(--profile)).
    type: list
    elements: str
  compose_cli:
    description:
      - The Compose CLI to use. A path to a C(docker) CLI uses its C(compose) plugin; a path whose name starts
        with C(docker-compose) is taken as a standalone binary.
      - When not set, C(docker compose) is tried first, then C(docker-compose) on E(PATH).
      - Compose v2 2.18.0 or later is required; Compose v1 is refused with a message that says how to install v2.
    type: path
requirements:
  - Docker Engine with Compose v2 >= 2.18.0 (the C(docker compose) plugin or a standalone v2 C(docker-compose)).
"""

    # A program run inside a compose service instead of on the host (nginx_config, pg_backup, pg_restore): the
    # project; each module documents its own compose_service.
    PROJECT = r"""
options:
  compose_project_src:
    description:
      - The compose project whose service (O(compose_service)) runs the program, with C(docker compose exec). Leave
        it out to run the host's program.
    type: path
  compose_project_name:
    description: The compose project's name, when it is not the one Compose derives.
    type: str
  compose_files:
    description: The compose files, when they are not the default ones.
    type: list
    elements: path
"""
