# fedkit -- `make demo` runs the embedded demo, `make test` runs the whole test suite.
# Both create .venv when missing and install into it (again only when pyproject.toml changes).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
# Where the offline CIFAR-10 copy is built for tests (the default data folder of fedkit).
FEDKIT_DATA ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/fedkit
export FEDKIT_DATA
export PATH := $(abspath $(BIN)):$(PATH)
export FLWR_TELEMETRY_ENABLED := 0
export FLWR_DISABLE_UPDATE_CHECK := 1
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION := 1

STAMP := $(VENV)/.fedkit-installed
CIFAR := $(FEDKIT_DATA)/cifar-10-batches-py/test_batch

.PHONY: install demo test test-data lint bench api-docs clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fedkit simulate --config simulations/demo.toml --compare algorithm=fedavg,fedlaavg

# Builds the offline CIFAR-10 copy from ../shared when it is there (tests that need it skip
# with a stated reason when it is not).
test-data: $(STAMP)
	@if [ -f "$(CIFAR)" ]; then echo "CIFAR-10 ready in $(FEDKIT_DATA)"; \
	elif [ -f "$(SHARED)/data/cifar10/build.py" ]; then \
	  mkdir -p "$(FEDKIT_DATA)" && $(BIN)/python "$(SHARED)/data/cifar10/build.py" "$(FEDKIT_DATA)"; \
	else echo "no $(SHARED)/data/cifar10: CIFAR-10 tests will be skipped"; fi

test: $(STAMP) test-data
	$(BIN)/python -m pytest -q
	$(BIN)/python -m pytest -q --doctest-modules fedkit

lint: $(STAMP)
	$(BIN)/ruff check fedkit tests benchmarks examples

# HTML reference of the public API from the docstrings (docs/api/, not committed).
api-docs: $(STAMP)
	$(BIN)/python -m pip install --quiet 'pdoc>=14'
	$(BIN)/python -m pdoc -o docs/api --docformat google fedkit

bench: $(STAMP) test-data
	$(BIN)/python benchmarks/round_time.py

clean:
	rm -rf runs .pytest_cache
