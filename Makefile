# Two commands are all the set-up: `make demo` and `make test` create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv browser demo test test-container lint bench docs clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

venv: $(STAMP)

browser:
	scripts/install-browser.sh

demo: venv
	$(BIN)/python examples/demo.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: venv browser
	$(BIN)/python -m pytest --hypothesis-profile=ci -m "not container" tests

test-container: venv
	$(BIN)/python -m pytest --hypothesis-profile=ci -m container tests/container

# The serving benchmarks drive the server with wrk: installed with apt-get when possible, else named.
bench: venv
	@command -v wrk >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
		&& echo "make bench: installing wrk (apt-get)" && apt-get install -y -q wrk >/dev/null; } \
		|| { echo "make bench: wrk is missing: install it (Debian/Ubuntu: sudo apt-get install wrk;" \
		"macOS: brew install wrk) and run make bench again" >&2; exit 1; }
	$(BIN)/python benchmarks/training.py
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/multimodel.py

docs: venv
	$(BIN)/python -m byoc.docs README.md

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info container/*.egg-info
