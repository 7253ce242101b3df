#!/usr/bin/env bash
# The health check of the lab's stack hosts against the runbooks' diagnostic commands run as one shell task each
# (bench/seed_diagnostics.yml), in the same hyperfine run. The literal translation only prints; health_check also
# judges every reading, so it does more work per host.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results
mkdir -p "$out"
hyperfine --warmup 1 --runs "${RUNS:-3}" --export-json "$out/health_check.json" \
  -n seed-commands "ansible-playbook -i inventories/lab bench/seed_diagnostics.yml" \
  -n health_check "ansible-playbook -i inventories/lab stackops.runbooks.health_check -e health_check_report_dir="
python3 - "$out/health_check.json" <<'PY'
import json, sys
results = json.loads(open(sys.argv[1]).read())["results"]
base = results[0]["mean"]
for r in results:
    print(f"health_check     {r['command']:14} mean {r['mean']:.2f} s  ±{r['stddev']:.2f}  speed-up {base / r['mean']:.2f}x")
PY
# Where health_check's time goes: per task, and the run time of each part inside stack_health (from its result).
python3 bench/profile_playbook.py stackops.runbooks.health_check health_check_report_dir=
