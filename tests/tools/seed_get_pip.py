"""Put the offline get-pip stand-in where ansible-test looks before it downloads (~/.ansible/test/cache)."""

import re
import shutil
from pathlib import Path

import ansible_test

source = (Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
versions = set(re.findall(r"pip='([0-9.]+)'", source))
if not versions:
    raise SystemExit("seed_get_pip: could not find the pip version ansible-test bootstraps; update this script.")
cache = Path.home() / ".ansible" / "test" / "cache"
cache.mkdir(parents=True, exist_ok=True)
for version in versions:
    shutil.copyfile(Path(__file__).with_name("get_pip_offline.py"), cache / f"get_pip_{version.replace('.', '_')}.py")
