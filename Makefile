# Two commands on a fresh machine:
#   make serve   installs what the server needs and starts it on the embedded default
#   make test    installs what the tests need and runs the whole suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: serve test install install-test system-packages services bench bench-profile clean

serve: install system-packages
	$(VENV)/bin/headwater serve

test: install-test system-packages services
	$(PY) -m pytest

install: $(VENV)/.runtime-installed

install-test: $(VENV)/.test-installed

# Prebuilt wheels only (llama.cpp comes as xllamacpp's): no compiler, cmake or source build.
$(VENV)/.runtime-installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.runtime-installed
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# Every benchmark scenario against its baselines; writes bench/REPORT.md and bench/charts/*.png.
bench: BENCH_STARTED := $(shell date +%s)
bench: $(VENV)/.bench-installed
	$(PY) -m bench --started-at $(BENCH_STARTED)

# Hot-path profile of Headwater under load (py-spy); see bench/profile.py for the options.
bench-profile: $(VENV)/.bench-installed
	$(PY) -m bench.profile $(PROFILE_ARGS)

$(VENV)/.bench-installed: $(VENV)/.runtime-installed
	$(PY) -m pip install --quiet -e '.[bench]'
	touch $@

# Debian packages (bubblewrap for the code node, speech and PDF tools for the tests); only missing ones.
system-packages:
	bash scripts/install_system_packages.sh

# PostgreSQL and Redis run as services on these machines; start them if they stopped.
services:
	bash scripts/ensure_services.sh

clean:
	rm -rf $(VENV) data
