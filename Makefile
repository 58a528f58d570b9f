# radtl: `make install` creates .venv/ and installs everything, `make test` runs the suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install test demo bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

install: $(PY)
	$(PY) -m pip install -q -e '.[tfds-cli,test]'

test:
	$(PY) -m pytest -n 2 --dist loadfile -q $(PYTEST_ARGS)

demo:
	$(PY) cli.py demo

bench:
	$(PY) benchmarks/input_pipeline.py

clean:
	rm -rf $(VENV) build *.egg-info
