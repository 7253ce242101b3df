"""Offline stand-in for the get-pip script ansible-test downloads when it bootstraps a fresh venv.

ansible-test runs it with pip's install options and the packages to install (pip==X, setuptools...). Instead of
a download, pip comes from the interpreter's own ensurepip wheel; pip then installs the pinned packages from
the configured package index as usual. `make sanity` copies it to ~/.ansible/test/cache/get_pip_<ver>.py.
"""

import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
options = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", *options])
