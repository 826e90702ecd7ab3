# Two commands are all the set-up: `make demo` and `make test` create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv venv-sdk3 browser demo test test-container test-container-sdk3 lint bench bench-automl-venv bench-automl docs clean

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

# Two test processes (pytest-xdist), each running whole files (--dist loadfile), so a module's
# fixtures — models trained by the real `train` — are built once: 2,398 s serially at 55c4082,
# 1,568 s with two processes on the same 2 cores (most tests wait on the processes they start);
# 1,413 s at 1ba9e08 (CI).  Files are handed out in collection order (--no-loadscope-reorder), which
# tests/conftest.py makes the files with a test marked slow first: xdist's own order (by number of
# tests) could start a file of a few long tests last.  On tests/unit's durations at 1ba9e08 (1,191 s
# of test time, `pytest --durations=0 -n 2 --dist loadfile tests/unit`, load ~5) two processes end
# after 687 s in xdist's order and 595 s (the ideal half) slow-first (simulated from those durations).
# The test processes run their math libraries on one thread (tests/conftest.py): OpenMP's threads
# spin-waiting for a core the other process held made in-process predictions cost several times their
# work.  CPU seconds (user+sys, `/usr/bin/time pytest --hypothesis-profile=ci FILE`, 4b30500 -> 529d53c,
# back to back on a shared machine): tests/unit/test_row_members.py 88 -> 24, test_row_ensemble.py
# 64 -> 49 (0381e59 -> 4307674 at load ~3, where its wall clock stayed 66-71 s: the saving is CPU, which
# counts when the cores are shared), tests/integration/test_agreement.py 574 -> 401 (also its expected
# answers computed once per model, and 3 of its 37 trainings shared); its sparse and large-batch checks
# (`-k "one_hot or large_batches"`, 0381e59 -> 4307674, load ~6.8) 227 -> 105 s wall, 94 -> 68 s of CPU.
# In CI (`bash .ci/run`, clean clone, quiet machine): 1,394 s for 2,680 tests at 9f82322, 1,310 s for
# 2,741 tests at 947b834.  TEST_PROCESSES=3 is not measured.  Back to back at load ~5 (6d805fd -> cf6c814,
# `pytest --hypothesis-profile=ci --durations=0 FILE -k ...`): test_compiled_knn's category-codes test
# 49.6 -> 20.3 s (its reference on one thread: n_jobs=-1 polled a thread pool per row), and the two
# refit restart tests of test_automl 56.6 -> 41.9 s (one shared first job: 4 -> 3 train processes; again at
# c478449, main c6bc322: 61.1 -> 42.4 s, 25.0 -> 16.0 s of CPU).
# In CI at 2fb958b (bash .ci/run, clean clone, quiet machine): 1,323 s for 2,809 tests; at c936ce7
# 1,315 s for 2,905 tests; at db8fbcb 1,667 s for 2,981 tests, with other tests running beside it for 10 of its minutes.
TEST_PROCESSES ?= 2

test: venv browser
	$(BIN)/python -m pytest --hypothesis-profile=ci --durations=25 -n $(TEST_PROCESSES) --dist loadfile \
		--no-loadscope-reorder -m "not container" tests

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

# The AutoML benchmark's anchors (FLAML, AutoGluon) live in their own environment, never in .venv or the
# image. torch==2.13.0 is installed first: it is the CPU wheel kept on disk, so nothing pulls a CUDA build.
BENCH_VENV  := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-stamp
AUTOML_BENCH_ARGS ?= --datasets all --splits 5 --budgets 60,300 --resume

$(BENCH_STAMP): pyproject.toml benchmarks/requirements-automl.txt
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q torch==2.13.0
	$(BENCH_VENV)/bin/python -m pip install -q -e . -r benchmarks/requirements-automl.txt
	@touch $@

bench-automl-venv: $(BENCH_STAMP)

bench-automl: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python benchmarks/automl.py $(AUTOML_BENCH_ARGS)

docs: venv
	$(BIN)/python -m byoc.docs README.md

clean:
	rm -rf $(VENV) $(SDK3_VENV) $(BENCH_VENV) .pytest_cache build *.egg-info container/*.egg-info
