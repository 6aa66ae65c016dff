# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: run test bench install clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-install when the project's dependency files change.
$(STAMP): $(PY) pyproject.toml constraints.txt plugins/workbench-lowrank/pyproject.toml
	$(PIP) install --quiet --upgrade "pip>=23"
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e ".[dev]"
	# The example third-party plugin, installed like any plugin would be (its tests run with the suite).
	$(PIP) install --quiet -c constraints.txt -e plugins/workbench-lowrank
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/workbench --demo

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q tests plugins/workbench-lowrank/tests

bench: $(STAMP)
	$(PY) tests/benchmarks/run_all.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
