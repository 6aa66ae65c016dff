# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: run test bench install package clean

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

# The one-folder desktop bundle (dist/ModelWorkbench/, CPU torch), then a check that it starts and draws the demo
# (docs/packaging.md). Not part of `make test`: it takes minutes and writes about a gigabyte.
$(VENV)/.package-installed: $(STAMP)
	$(PIP) install --quiet -c constraints.txt -e ".[package]"
	touch $@

package: $(VENV)/.package-installed
	$(PY) -m PyInstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller \
		packaging/workbench.spec
	QT_QPA_PLATFORM=offscreen $(PY) packaging/check_bundle.py dist/ModelWorkbench \
		--screenshot build/bundle-screenshot.png

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
