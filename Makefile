# plancode: the two entry points README.md promises, plus helpers.
#   make demo   set up everything, fetch the default model, plan-then-code an example function
#   make test   set up everything and run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test test-fast test-nobwrap lint bench clean doctor llama

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "plancode needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# llama-cpp-python compiles llama.cpp on first install (several minutes on 2 cores). It is
# built with every ISA extension this CPU has except AMX (ggml's AMX kernels die with SIGILL on
# Intel Xeon, llama.cpp PR #26954), into a wheel folder keyed by the flags, so a cached wheel
# built with other flags is never reused; `llama` re-checks the key on every run (instant).
llama: | $(BIN)/python
	$(BIN)/python server/doctor/llama_build.py install --python $(BIN)/python

$(STAMP): pyproject.toml | llama
	$(BIN)/python -m pip install --quiet -e '.[dev,hf,train]'
	touch $(STAMP)

doctor: $(STAMP) llama
	$(BIN)/plancode doctor

# the 1.5B is what `plancode complete` escalates to when the small model's candidates fail or
# weak tests leave a doubt (escalate_model = auto uses it only when it is in the store)
demo: $(STAMP) llama
	$(BIN)/plancode model fetch qwen2.5-coder-0.5b
	$(BIN)/plancode model verify qwen2.5-coder-0.5b
	$(BIN)/plancode model fetch qwen2.5-coder-1.5b
	$(BIN)/plancode complete examples/textstats/textstats/numbers.py:13

test: $(STAMP) llama
	$(BIN)/plancode model fetch smollm2-135m
	$(BIN)/plancode model fetch qwen2.5-coder-0.5b
	$(BIN)/ruff check server trainer tests benchmarks
	$(BIN)/python -m pytest -q

# the sandbox and pipeline tests as on a machine without bubblewrap (CI's second leg; the
# bubblewrap rows skip, everything else runs under the kernel fallback; the 0.5B model's
# slow tests already ran in `make test`)
NOBWRAP_TESTS = tests/test_sandbox.py tests/test_sandbox_attacks.py tests/test_secrets.py \
                tests/test_pipeline.py tests/test_cli.py tests/test_split_run.py \
                tests/test_call_proxy.py tests/test_view_attacks.py
test-nobwrap: $(STAMP) llama
	.ci/without-bwrap $(BIN)/python -m pytest -q -m "not slow" $(NOBWRAP_TESTS)

test-fast: $(STAMP) llama
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python -m benchmarks.speed

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
