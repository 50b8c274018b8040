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
# Two pytest-xdist workers, each taking whole files (module fixtures are built once): most tests keep
# about one core busy (eager Keras steps, tracing, Beam, servers), so two cores run the suite ~1.6x faster.
# TEST_WORKERS=0 runs it in one process. --durations lists the slowest tests, to keep the suite under 10 minutes.
TEST_WORKERS ?= 2
test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -ra --durations=15 -n $(TEST_WORKERS) --dist loadfile; rc=$$?; if [ $$rc -eq 5 ]; then exit 0; else exit $$rc; fi

clean:
	rm -rf $(VENV) demo-run .pytest_cache
