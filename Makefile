# Two commands do all set-up on a fresh machine:  `make run`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test test-pretrained lint bench

$(BIN)/dlstudy: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# one pip call, constrained: a looser torch would pull a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

# the tests also cover the scale-out extras (Ray, the PostgreSQL driver); `make run` needs neither
$(VENV)/.extras: $(BIN)/dlstudy
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,ray,postgres]'
	touch $@

run: $(BIN)/dlstudy
	$(BIN)/dlstudy run all

test: $(VENV)/.extras
	$(BIN)/python -m pytest -q -ra -m "not pretrained"

# timm (grid.encoders timm:<name>) imports torchvision, which does not load beside constraints.txt's CPU torch:
# its tests run in a venv of their own, on the torch + torchvision pair in constraints-pretrained.txt
PRETRAINED ?= .venv-pretrained
$(PRETRAINED)/.installed: pyproject.toml constraints-pretrained.txt
	$(PYTHON) -m venv $(PRETRAINED)
	$(PRETRAINED)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints-pretrained.txt -e '.[test,pretrained]'
	touch $@

test-pretrained: $(PRETRAINED)/.installed
	$(PRETRAINED)/bin/python -m pytest -q -ra -m pretrained

# ruff's lint rules and format live in pyproject.toml; `ruff format src tests benchmarks` fixes the second
lint: $(VENV)/.extras
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(VENV)/.extras
	$(BIN)/python benchmarks/bench_cluster.py
	$(BIN)/python benchmarks/bench_trend.py
	$(BIN)/python benchmarks/bench_classify.py
	$(BIN)/python benchmarks/bench_generate.py
	$(BIN)/python benchmarks/bench_sweep.py
