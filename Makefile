# plancode: the two entry points README.md promises, plus helpers.
#   make demo   set up everything, fetch the default model, plan-then-code an example function
#   make test   set up everything and run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test test-fast lint bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "plancode needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# llama-cpp-python compiles llama.cpp on first install (several minutes on 2 cores; pip
# caches the wheel afterwards).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,hf,train]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/plancode model fetch qwen2.5-coder-0.5b
	$(BIN)/plancode model verify qwen2.5-coder-0.5b
	$(BIN)/plancode complete examples/textstats/textstats/numbers.py:13

test: $(STAMP)
	$(BIN)/plancode model fetch smollm2-135m
	$(BIN)/plancode model fetch qwen2.5-coder-0.5b
	$(BIN)/ruff check server trainer tests benchmarks
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python -m benchmarks.speed

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
