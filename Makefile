# stackops.runbooks: `make demo` runs the main job on the lab, `make test` runs every test. Both install what
# they need (Debian packages, Docker Engine, Compose v2, a Python venv) and bring the lab fleet up first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# The real interpreter, not a pyenv shim: shims break ansible-test and interpreter discovery.
PYTHON ?= $(shell python3 -c 'import sys; print(sys.executable)')
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
COLLECTIONS := $(CURDIR)/.build/collections
COLLECTION := $(COLLECTIONS)/ansible_collections/stackops/runbooks
# ansible-test resolves its working directory, so a symlink will not do: it tests a copy of the tree.
# The copy lives outside this checkout, where git would hide it from ansible-test.
SANITY_TREE := /tmp/stackops-sanity-$(shell echo $(CURDIR) | md5sum | cut -c1-8)/ansible_collections/stackops/runbooks

export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: help venv collection lab-up lab-down lab-status demo lint sanity unit integration test docs bench clean

help:
	@echo "make demo        bring the lab up and run the main job against it"
	@echo "make test        every check: lint, ansible-test sanity, unit and integration tests (brings the lab up)"
	@echo "make lab-up | lab-down | lab-status    the lab fleet (127.0.2.N hosts over SSH)"
	@echo "make lint | sanity | unit | integration | docs | bench"

$(BIN)/.installed: requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
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
# a one-screen summary and the report's paths).
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
	pytest tests/unit

integration: lab-up
	pytest tests/integration

# ansible-test sanity mostly waits (venvs, subprocesses), so it runs beside pytest, which mostly waits on the lab.
# Its output is shown when it fails; the last line is always pytest's summary.
test: lint lab-up
	$(MAKE) --no-print-directory sanity > .build/sanity.log 2>&1 & sanity=$$!; \
	tests=0; pytest -n 2 --durations=20 tests/unit tests/integration 2>&1 | tee .build/pytest.log || tests=$$?; \
	checks=0; wait $$sanity || checks=$$?; \
	if [ $$checks -ne 0 ]; then cat .build/sanity.log; echo "make test: ansible-test sanity failed (above)"; \
	else grep -E '^(Running sanity test|WARNING)' .build/sanity.log | tail -n 3; echo "make test: ansible-test sanity passed"; fi; \
	tail -n 1 .build/pytest.log; [ $$tests -eq 0 ] && [ $$checks -eq 0 ]

# Benchmarks as ratios against baselines measured in the same run (bench/README.md).
bench: lab-up
	bash bench/compose_service.sh
	bash bench/health_check.sh
	$(BIN)/python bench/nginx_switch.py
	$(BIN)/python bench/backup_restore.py
	$(BIN)/python bench/redis_delete.py

# stack_health's nested doc fragment, then module and role pages, are generated; tests/unit/test_docs.py fails when
# either is stale.
docs: venv collection
	$(BIN)/python tests/tools/gen_fragments.py
	$(BIN)/python tests/tools/gen_docs.py
	$(BIN)/python tests/tools/gen_changelog.py

clean:
	rm -rf .build tests/output .pytest_cache .ruff_cache .mypy_cache
