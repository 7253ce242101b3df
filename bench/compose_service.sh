#!/usr/bin/env bash
# compose_service against what the runbooks type by hand, on the lab's lab1 stack (unchanged, all healthy):
#   baseline  `docker compose up -d`                      (no readiness check, no change detection)
#   module    compose_service state=started over SSH       (ps before/after, readiness check of every service)
#   check     the same in check mode                       (compose --dry-run instead of up)
#   restart   `docker compose restart app` then `up --wait app` (restart, then wait until healthy, by hand)
#             vs compose_service state=restarted services=[app] (which waits for readiness itself)
# hyperfine runs each command repeatedly; ratios are against the baseline measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results
mkdir -p "$out"
project=/var/lib/stackops-lab/hosts/lab1
compose=(docker compose --project-directory "$project" -p stackops-lab1)
module=(ansible lab1 -i inventories/lab -m stackops.runbooks.compose_service)
hyperfine --warmup 1 --runs "${RUNS:-5}" --export-json "$out/compose_up.json" \
  -n baseline "${compose[*]} up -d" \
  -n module "${module[*]} -a project_src=$project" \
  -n check "${module[*]} -C -a project_src=$project"
hyperfine --warmup 1 --runs "${RUNS:-5}" --export-json "$out/compose_restart.json" \
  -n baseline-restart "${compose[*]} restart app && ${compose[*]} up --wait app" \
  -n module-restart "${module[*]} -a '{\"project_src\": \"$project\", \"state\": \"restarted\", \"services\": [\"app\"]}'"
python3 - "$out" <<'PY'
import json, sys, pathlib
for name in ("compose_up", "compose_restart"):
    results = json.loads((pathlib.Path(sys.argv[1]) / f"{name}.json").read_text())["results"]
    base = results[0]["mean"]
    for r in results:
        print(f"{name:16} {r['command']:17} mean {r['mean']:.2f} s  ±{r['stddev']:.2f}  ratio {r['mean'] / base:.2f}")
PY
