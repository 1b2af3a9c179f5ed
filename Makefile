# Two commands on a fresh machine: `make bench` and `make test`. Each builds .venv/ when needed.
VENV    ?= .venv
PY      := $(VENV)/bin/python
EXTRA   ?= cpu
# plots: matplotlib, for the PNG plots BENCHMARKS.md embeds (without it the report has tables only);
# docs: MkDocs + Material, for the documentation site that `make lint` builds;
# ray: ray[data] for --mode=ray and its tests (4 packages, ~150 MB of wheels)
comma   := ,
EXTRAS  := $(EXTRA),test,plots,docs,ray
STAMP   := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
# The embedded default: Gemma 3 270M on vLLM's CPU build, offline and server, 64 requests of the 5K sample.
BENCH_ARGS ?= --model=gemma-270m --mode=offline --mode=server --limit=64
BENCH_NAME ?= bench
LINTED  := pytest_vllmbench tests benchmarks conftest.py

# `make test`: lint, the fast tests and the one real-engine smoke; `make test-engine`: the other real-engine tests.
FAST    := -m "not engine or smoke"
ENGINE  := -m "engine and not smoke"
# the two-node Ray cluster test alone (it is also among the engine tests)
RAY_CLUSTER := -m "ray_cluster"
# Both on every core (pytest-xdist); tests/conftest.py's scheduler keeps the smoke's module (one engine load) on one worker.
# XDIST= runs them in one process.
XDIST   ?= -n auto

# With PYTHONDONTWRITEBYTECODE set (some CI images and sandboxes set it) no bytecode is ever cached, so every
# interpreter compiles what it imports afresh: `import vllm` 10.7 s of CPU instead of 4.1 s, a small pytest session
# 3.1 s instead of 1.3 s (docs/measurements.md, "Fast loops"). A bench starts six interpreters that import vLLM and a
# test run dozens of pytest sessions: the venv is this Makefile's own, so its bytecode is cached as Python does by default.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: bench test test-engine test-ray-cluster lint model venv clean-venv

venv: $(STAMP)

# tools/install.sh: uv (from PyPI, into the venv) when it installs, pip otherwise
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	tools/install.sh $(PY) -e '.[$(EXTRAS)]'
	# PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break `import vllm` beside the CPU torch.
	if [ "$(EXTRA)" = cpu ]; then $(PY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec; fi
	touch $@

model: $(STAMP)
	$(VENV)/bin/vllmbench prepare-model gemma-270m

bench: model
	$(VENV)/bin/pytest benchmarks/ $(BENCH_ARGS) --benchmark-save=$(BENCH_NAME)

# ruff (lint and format), mypy (strict), the import-layer contract of pyproject's [tool.importlinter], and the
# docs site built with --strict (a broken link or anchor, or a page missing from the nav, fails; not --quiet, which
# would hide the warnings that --strict counts) into the git-ignored site/
lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

test: lint model
	$(VENV)/bin/pytest tests/ $(FAST) $(XDIST) $(TEST_ARGS)

test-engine: model
	$(VENV)/bin/pytest tests/ $(ENGINE) $(XDIST) $(TEST_ARGS)

test-ray-cluster: model
	$(VENV)/bin/pytest tests/ $(RAY_CLUSTER) $(TEST_ARGS)

clean-venv:
	rm -rf $(VENV)
