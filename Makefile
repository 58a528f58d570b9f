# radtl. On a fresh machine: `make demo` (main job) and `make test` (the test suite);
# both create .venv/ and install the package with everything it needs first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test test-all demo bench wheel-smoke clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[tfds-cli,test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -q $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -q --run-slow $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) cli.py train --config configs/runs/demo.yaml

# Build the wheel and use it from a fresh virtual environment outside the checkout.
wheel-smoke: $(STAMP)
	bash .ci/wheel_smoke.sh

# Each benchmark prints its table and ends with one `headline:` line (benchmarks/RESULTS.md).
bench: $(STAMP)
	$(PY) benchmarks/input_pipeline.py
	$(PY) benchmarks/linear_probe.py
	$(PY) benchmarks/train_step.py
	$(PY) benchmarks/sweep_throughput.py
	$(PY) benchmarks/gpu.py

clean:
	rm -rf $(VENV) build *.egg-info
