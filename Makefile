# stackops.runbooks: `make demo` runs the main job on the lab, `make test` runs every test. Both install what
# they need (Debian packages, Docker Engine, Compose v2, a Python venv) and bring the lab fleet up first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# The ansible-core series of the venv: requirements-dev.txt's (the oldest supported, which the full suite runs on),
# or NEWEST, the matrix leg's, on its own Python (`make unit CORE=2.21`). README's support matrix; docs/testing.md.
OLDEST := 2.19
NEWEST := 2.21
CORE ?= $(OLDEST)
# pytest-xdist workers of `make test`'s main run (each takes a lane of lab hosts: docs/testing.md).
WORKERS ?= 2
# The real interpreter, not a pyenv shim: shims break ansible-test and interpreter discovery.
ifeq ($(CORE),$(OLDEST))
PYTHON ?= $(shell python3 -c 'import sys; print(sys.executable)')
VENV := $(CURDIR)/.venv
else
PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) $(shell command -v python3.12))
VENV := $(CURDIR)/.venv-$(CORE)
endif
BIN := $(VENV)/bin
COLLECTIONS := $(CURDIR)/.build/collections
COLLECTION := $(COLLECTIONS)/ansible_collections/stackops/runbooks
# ansible-test resolves its working directory, so a symlink will not do: it tests a copy of the tree.
# The copy lives outside this checkout, where git would hide it from ansible-test.
SANITY_TREE := /tmp/stackops-sanity-$(shell echo $(CURDIR) | md5sum | cut -c1-8)-$(CORE)/ansible_collections/stackops/runbooks

export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: help venv collection lab-up lab-down lab-status demo lint sanity unit integration matrix test docs bench bench-fleet clean

help:
	@echo "make demo        bring the lab up and run the main job against it"
	@echo "make test        every check: lint, ansible-test sanity, unit and integration tests (brings the lab up)"
	@echo "make lab-up | lab-down | lab-status    the lab fleet (127.0.2.N hosts over SSH)"
	@echo "make lint | sanity | unit | integration | matrix | docs | bench   (CORE=$(NEWEST) for the newest ansible-core)"
	@echo "make bench-fleet [FLEET_SIZES=3,10]   health check, backup and drill over 3 to 100 aliases of the lab hosts"

$(BIN)/.installed: requirements-dev.txt
	@test -x "$(PYTHON)" || { echo "ansible-core $(CORE) needs Python 3.12 or later: install it (pyenv install 3.12) or set PYTHON"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	mkdir -p .build && sed 's/^ansible-core[<>=].*/ansible-core==$(CORE).*/' requirements-dev.txt > .build/requirements-$(CORE).txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r .build/requirements-$(CORE).txt
	touch $@

venv: $(BIN)/.installed

# ansible-test and FQCN playbooks need the collection at .../ansible_collections/stackops/runbooks/.
$(COLLECTION):
	mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

collection: $(COLLECTION)

lab-up: venv collection
	$(BIN)/python lab/lab.py up

lab-down: venv
	$(BIN)/python lab/lab.py down

lab-status: venv
	$(BIN)/python lab/lab.py status

# The main job on the lab: health check, nightly backup of lab1 and lab2, restore drill onto drill1 (its progress,
# a one-screen summary and the report's paths; ansible-runner's artifacts of the run stay in ./stackops-runs).
demo: lab-up
	ansible-playbook -i inventories/lab stackops.runbooks.health_check
	ansible-playbook -i inventories/lab stackops.runbooks.backup
	$(BIN)/python -m stackops_cli drill -i inventories/lab -e restore_drill_negative_control=true

lint: venv collection
	ruff check .
	ruff format --check .
	mypy $(COLLECTION)/plugins lab/lab.py tests/harness stackops_cli
	ansible-lint

# ansible-test bootstraps pip in each fresh venv from a download: seed_get_pip gives it a local stand-in.
# It tests the files git would commit (tracked or untracked, not ignored).
sanity: venv collection
	$(BIN)/python tests/tools/seed_get_pip.py
	rm -rf $(SANITY_TREE) && mkdir -p $(SANITY_TREE)
	git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf - | tar -C $(SANITY_TREE) -xf -
	cd $(SANITY_TREE) && ansible-test sanity --venv --python 3.11 --color no

unit: venv collection
	pytest -n 2 tests/unit

integration: venv lab-up
	pytest -n 2 tests/integration

# The matrix leg on CORE alone: the unit tests and the integration tests marked `matrix` (every module, the main
# playbooks). `make test` runs the same tests on the newest within its one pytest run.
matrix: venv collection lab-up
	pytest -n 2 -m "matrix or not lab" tests/unit tests/integration

# Lint, ansible-test sanity and the unit tests (each for both series) run beside the lab's start, whose image
# builds mostly download, and beside the integration tests' pytest, which mostly waits on the lab: every
# integration test on the oldest, except those marked `matrix`, whose playbooks and modules the newest's controller
# runs (each integration test runs once). The output of what failed is shown; the unit runs' summaries come next and
# the last line is always the integration pytest's summary (.build/junit.xml has every test's time at the end,
# .build/times.tsv each test's as it ends).
test: venv collection
	$(MAKE) --no-print-directory venv CORE=$(NEWEST)
	$(MAKE) --no-print-directory lint > .build/lint.log 2>&1 & lint=$$!; \
	{ $(MAKE) --no-print-directory sanity && $(MAKE) --no-print-directory sanity CORE=$(NEWEST); } \
	  > .build/sanity.log 2>&1 & sanity=$$!; \
	{ $(MAKE) --no-print-directory unit > .build/pytest-unit-$(OLDEST).log 2>&1; oldest=$$?; \
	  $(MAKE) --no-print-directory unit CORE=$(NEWEST) > .build/pytest-$(NEWEST).log 2>&1 && exit $$oldest; } & units=$$!; \
	$(MAKE) --no-print-directory lab-up || { kill $$sanity $$lint $$units; exit 1; }; \
	tests=0; rm -f .build/times.tsv; STACKOPS_TIMES=$(CURDIR)/.build/times.tsv \
	  STACKOPS_NEWEST_ANSIBLE=$(CURDIR)/.venv-$(NEWEST)/bin pytest -n $(WORKERS) --durations=20 \
	  --junitxml=.build/junit.xml tests/integration 2>&1 | tee .build/pytest.log || tests=$$?; \
	wait $$units || { tests=1; tail -n 60 .build/pytest-unit-$(OLDEST).log .build/pytest-$(NEWEST).log; }; \
	echo "make test: unit tests, ansible-core $(OLDEST): $$(tail -n 1 .build/pytest-unit-$(OLDEST).log)"; \
	echo "make test: unit tests, ansible-core $(NEWEST): $$(tail -n 1 .build/pytest-$(NEWEST).log)"; \
	checks=0; wait $$lint || { checks=1; cat .build/lint.log; echo "make test: lint failed (above)"; }; \
	wait $$sanity || { checks=1; cat .build/sanity.log; echo "make test: ansible-test sanity failed (above)"; }; \
	if [ $$checks -eq 0 ]; then grep -E '^(Running sanity test|WARNING)' .build/sanity.log | tail -n 3; \
	  echo "make test: lint and ansible-test sanity passed ($(OLDEST) and $(NEWEST))"; fi; \
	tail -n 1 .build/pytest.log; [ $$tests -eq 0 ] && [ $$checks -eq 0 ]

# Benchmarks as ratios against baselines measured in the same run (bench/README.md).
bench: lab-up
	bash bench/compose_service.sh
	bash bench/health_check.sh
	$(BIN)/python bench/nginx_switch.py
	$(BIN)/python bench/backup_restore.py
	$(BIN)/python bench/redis_delete.py

# Fleet scale (bench/README.md, "Fleet scale"): wall time and controller CPU per host as the fleet grows, about 35
# minutes for every size on the 2-core lab machine; FLEET_SIZES=3,10 for a quick check. It holds the lab's lock
# (/tmp/team/engine.lock, when the machine has one) so that no integration test shares the lab while it measures.
FLEET_SIZES ?= 3,10,30,100
FLEET_LOCK := $(firstword $(wildcard /tmp/team/engine.lock) $(CURDIR)/.build/lab.lock)
bench-fleet: lab-up
	flock $(FLEET_LOCK) $(BIN)/python bench/fleet.py --sizes $(FLEET_SIZES)

# stack_health's nested doc fragment, then module and role pages, are generated; tests/unit/test_docs.py fails when
# either is stale.
docs: venv collection
	$(BIN)/python tests/tools/gen_fragments.py
	$(BIN)/python tests/tools/gen_docs.py
	$(BIN)/python tests/tools/gen_changelog.py

clean:
	rm -rf .build tests/output .pytest_cache .ruff_cache .mypy_cache
