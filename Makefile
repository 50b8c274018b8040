# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

# Debian packages the demo and tests use (Fashion-MNIST offline); skipped where apt is absent.
system-deps:
	@bash scripts/install-system-deps.sh

demo: $(STAMP) system-deps
	$(BIN)/corolla demo

# pytest exits 5 when it collects no test; that is not a failure.
test: $(STAMP)
	$(BIN)/python -m pytest -q -ra; rc=$$?; if [ $$rc -eq 5 ]; then exit 0; else exit $$rc; fi

clean:
	rm -rf $(VENV) demo-run .pytest_cache
