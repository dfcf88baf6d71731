# `make test` and `make demo` each set up everything they need on a fresh machine, then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: test demo demo-text bench evidence lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0

$(VENV)/.test-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

$(VENV)/.demo-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[demo]"
	touch $@

$(VENV)/.bench-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[bench]"
	touch $@

$(VENV)/.evidence-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[evidence]"
	touch $@

$(FASHION_MNIST):
	@if [ "$$(id -u)" = "0" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else \
		echo "Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist', then 'make demo'"; exit 1; \
	fi

CHROMEDRIVER := /usr/bin/chromedriver

# the explorer page is tested in real headless Chromium: Debian's chromium and chromium-driver
$(CHROMEDRIVER):
	@if [ "$$(id -u)" = "0" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else \
		echo "Chromium is missing: run 'sudo apt-get install chromium chromium-driver', then 'make test'"; exit 1; \
	fi

test: $(VENV)/.test-deps $(CHROMEDRIVER)
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest --doctest-modules src tests

demo: $(VENV)/.demo-deps $(FASHION_MNIST)
	$(BIN)/curata demo --out runs/demo

FORTUNES := /usr/share/games/fortunes/fortunes

$(FORTUNES):
	@if [ "$$(id -u)" = "0" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fortunes; \
	else \
		echo "fortunes is missing: run 'sudo apt-get install fortunes', then 'make demo-text'"; exit 1; \
	fi

# the text demo: Debian's fortunes described with MiniLM (all-MiniLM-L6-v2 from PyPI, read from disk)
demo-text: $(VENV)/.demo-deps $(FORTUNES)
	$(BIN)/curata demo --text --out runs/demo-text --target 3000

bench: $(VENV)/.bench-deps $(FASHION_MNIST)
	$(BIN)/python bench/describe.py
	$(BIN)/python bench/kmeans.py
	$(BIN)/python bench/kmeans_grid.py --cell-seconds 20 --real
	$(BIN)/python bench/kmeans_seeding.py
	$(BIN)/python bench/hkmeans_reference.py
	$(BIN)/python bench/fig3.py
	$(BIN)/python bench/fig3_independent.py
	$(BIN)/python bench/curation_balance.py
	$(BIN)/python bench/sampler.py
	$(BIN)/python bench/smart_batching_effect.py
	$(BIN)/python bench/hkmeans_scale.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/distributed.py
	$(BIN)/python bench/dedup.py
	$(BIN)/python bench/dedup_scale.py
	$(BIN)/python bench/selection.py
	$(BIN)/python bench/selection_scale.py

# regenerates docs/evidence.md and docs/evidence/ from scratch (vectors cached in runs/evidence/)
evidence: $(VENV)/.evidence-deps $(FASHION_MNIST) $(FORTUNES)
	$(BIN)/python bench/evidence/run_all.py

clean:
	rm -rf $(VENV) runs
