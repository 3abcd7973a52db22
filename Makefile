# Two commands on a fresh machine:
#   make serve   installs what the server needs and starts it on the embedded default
#   make test    installs what the tests need and runs the whole suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: serve test install install-test services bench clean

serve: install
	$(VENV)/bin/headwater serve

test: install-test services
	$(PY) -m pytest

install: $(VENV)/.runtime-installed

install-test: $(VENV)/.test-installed

$(VENV)/.runtime-installed: pyproject.toml scripts/install_llama.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel
	$(PY) -m pip install --quiet -e .
	PYTHON=$(PY) bash scripts/install_llama.sh
	touch $@

$(VENV)/.test-installed: $(VENV)/.runtime-installed
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# PostgreSQL and Redis run as services on these machines; start them if they stopped.
services:
	bash scripts/ensure_services.sh

clean:
	rm -rf $(VENV) data
