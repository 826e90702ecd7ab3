# Two commands are all the set-up: `make demo` and `make test` create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv venv-sdk3 browser demo test test-container test-container-sdk3 lint bench docs clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

venv: $(STAMP)

browser:
	scripts/install-browser.sh

# The SageMaker Python SDK v3 cannot share a venv with v2 (the test extra pins sagemaker<3): its
# container tests (tests/container/test_sdk3.py, marked sdk3) run from their own venv.
SDK3_VENV  := .venv-sdk3
SDK3_STAMP := $(SDK3_VENV)/.installed-stamp

$(SDK3_STAMP): pyproject.toml
	@test -x $(SDK3_VENV)/bin/python || $(PYTHON) -m venv $(SDK3_VENV)
	$(SDK3_VENV)/bin/python -m pip install -q --upgrade pip
	$(SDK3_VENV)/bin/python -m pip install -q -e . "sagemaker>=3.27,<4" "pytest>=8,<10" "hypothesis>=6.100,<7"
	@touch $@

venv-sdk3: $(SDK3_STAMP)

demo: venv
	$(BIN)/python examples/demo.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: venv browser
	$(BIN)/python -m pytest --hypothesis-profile=ci -m "not container" tests

test-container: venv
	$(BIN)/python -m pytest --hypothesis-profile=ci -m "container and not sdk3" tests/container

test-container-sdk3: venv-sdk3
	$(SDK3_VENV)/bin/python -m pytest -m sdk3 -p no:cacheprovider tests/container

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
	rm -rf $(VENV) $(SDK3_VENV) .pytest_cache build *.egg-info container/*.egg-info
