# Two commands do all set-up on a fresh machine:  `make run`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test bench

$(BIN)/dlstudy: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# one pip call, constrained: a looser torch would pull a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

run: $(BIN)/dlstudy
	$(BIN)/dlstudy run all

test: $(BIN)/dlstudy
	$(BIN)/python -m pytest -q -ra

bench: $(BIN)/dlstudy
	$(BIN)/python benchmarks/bench_cluster.py
	$(BIN)/python benchmarks/bench_trend.py
	$(BIN)/python benchmarks/bench_classify.py
	$(BIN)/python benchmarks/bench_generate.py
