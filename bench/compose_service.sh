#!/usr/bin/env bash
# compose_service against what the runbooks type by hand, on the lab's lab1 stack (unchanged, all healthy):
#   baseline  `docker compose up -d`                      (no readiness check, no change detection)
#   module    compose_service state=started over SSH       (ps before/after, readiness check of every service)
#   check     the same in check mode                       (compose --dry-run instead of up)
#   restart   `docker compose restart app` then `up --wait app` (restart, then wait until healthy, by hand)
#             vs compose_service state=restarted services=[app] (which waits for readiness itself)
#   poll      one poll of the module's wait for readiness: the project listing it used to repeat (`compose ps` and
#             `docker inspect`) vs the one `docker inspect` of the known containers it repeats now (POLL_FORMAT)
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
ids=$("${compose[@]}" ps -q | tr '\n' ' ')
poll_format=$(cd .build/collections && python3 -c \
  'from ansible_collections.stackops.runbooks.plugins.module_utils import _compose; print(_compose.POLL_FORMAT)')
listing_format=$(cd .build/collections && python3 -c \
  'from ansible_collections.stackops.runbooks.plugins.module_utils import _compose; print(_compose.INSPECT_FORMAT)')
hyperfine -N --warmup 2 --runs "$(( ${RUNS:-5} * 6 ))" --export-json "$out/compose_poll.json" \
  -n listing-poll "bash -c \"${compose[*]} ps --all --format json >/dev/null && docker inspect --format '$listing_format' $ids\"" \
  -n inspect-poll "docker inspect --format '$poll_format' $ids"
python3 - "$out" <<'PY'
import json, sys, pathlib
for name in ("compose_up", "compose_restart", "compose_poll"):
    results = json.loads((pathlib.Path(sys.argv[1]) / f"{name}.json").read_text())["results"]
    base = results[0]["mean"]
    for r in results:
        cpu = r["user"] + r["system"]
        print(f"{name:16} {r['command']:17} mean {r['mean']:.3f} s  ±{r['stddev']:.3f}  ratio {r['mean'] / base:.2f}"
              f"  client CPU {cpu:.3f} s")
PY
