# `make test` and `make demo` each set up everything they need on a fresh machine, then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

# make test-full: the same, with every case of the few slow parametrized tests (tests/conftest.py: --full)
.PHONY: test test-full docs sanitize wheel-check demo demo-record demo-text bench evidence lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0

$(VENV)/.test-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test,docs]"
	touch $@

$(VENV)/.docs-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[docs]"
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

# two pytest workers: half the suite waits on subprocesses (torchrun, Lightning, killed jobs), so one core idles
# without them (one worker: 11.2 min on 2 cores; two: under 9)
PYTEST_WORKERS ?= 2

test: $(VENV)/.test-deps $(CHROMEDRIVER)
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --doctest-modules src tests $(PYTEST_FLAGS)

# the documentation site (mkdocs.yml), warnings failing the build, into build/site; make test builds it as well
# (tests/docs/test_pages.py, which also runs the code of the pages and checks the README's links into it)
docs: $(VENV)/.docs-deps
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# every case of every test, then the extension under the sanitizers and the wheels installed fresh (where gcc
# exists); CI runs make test, which leaves these out to stay within its time
test-full:
	$(MAKE) --no-print-directory test PYTEST_FLAGS=--full
	@if command -v gcc >/dev/null; then \
		$(MAKE) --no-print-directory sanitize wheel-check; \
	else \
		echo "no gcc: make sanitize and make wheel-check skipped (they build the extension)"; \
	fi

# The compiled scan under AddressSanitizer and UndefinedBehaviorSanitizer, in a build of its own: the package's
# sources copied to build/asan with the sanitized extension beside them, first on PYTHONPATH (the dev install stays
# as it is), then the tests of the compiled paths. libasan is preloaded (it must come first in the process);
# CPython and torch keep memory until exit by design, so leaks are not reported. setup.py treats a failed build of
# the extension as optional, hence the check that it is there and is the one imported. ASan does not see the
# AVX-512 kernels' masked loads and stores (a row read past its end went unreported there, and was caught in the
# scalar and AVX2 scans): test_simd_paths.py runs whole fits under those two as well.
SANITIZED := build/asan
SANITIZER_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g
SANITIZED_RUN = LD_PRELOAD="$$(gcc -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=0 \
	UBSAN_OPTIONS=print_stacktrace=1 PYTHONPATH=$(SANITIZED) CURATA_EXPECT_EXTENSION=$(SANITIZED)
SANITIZED_TESTS := tests/clustering/test_score_scan.py tests/clustering/test_simd_paths.py \
	tests/clustering/test_nearest.py tests/clustering/test_row_bounds.py tests/platform/test_sanitized.py

sanitize: $(VENV)/.test-deps
	rm -rf $(SANITIZED)
	mkdir -p $(SANITIZED)
	cp -r src/curata $(SANITIZED)/curata
	find $(SANITIZED) \( -name '*.so' -o -name __pycache__ \) -prune -exec rm -rf {} +
	CFLAGS="$(SANITIZER_FLAGS)" LDFLAGS="-fsanitize=address,undefined" \
		$(BIN)/python setup.py -q build_ext --build-lib $(SANITIZED) --build-temp $(SANITIZED)/objects
	ls $(SANITIZED)/curata/clustering/_score_scan*.so
	$(SANITIZED_RUN) $(BIN)/python -m pytest -p no:cacheprovider $(SANITIZED_TESTS)

# What a user gets from `pip install`: an sdist, then a wheel built from it with the C compiler and one without
# (CC=/bin/false: setup.py's extension is optional, so the build goes on without it); each installed in turn into a
# fresh venv (torch 2.13.0 first: an unpinned torch pulls a multi-GB CUDA build) and tests/platform/quickstart.py
# run from a folder outside the source tree, checking its answers and the path the package reports. For speed the
# venv has no pip of its own (the dev venv's installs into it) and nothing is byte-compiled at install: torch took
# 55 s to install here with both, 15 s without.
WHEEL_CHECK := build/wheel-check
WHEEL_PYTHON := $(CURDIR)/$(WHEEL_CHECK)/venv/bin/python
WHEEL_PIP := $(BIN)/pip --python $(WHEEL_PYTHON) install --quiet --no-compile
QUICKSTART = run=$$(mktemp -d) && cp tests/platform/quickstart.py $$run/ && cd $$run && \
	{ $(WHEEL_PYTHON) quickstart.py $(1); status=$$?; rm -rf $$run; exit $$status; }

wheel-check: $(BIN)/python
	rm -rf $(WHEEL_CHECK)
	mkdir -p $(WHEEL_CHECK)
	$(BIN)/python setup.py -q egg_info --egg-base $(WHEEL_CHECK) sdist -d $(WHEEL_CHECK)/sdist
	$(BIN)/pip wheel --quiet --no-deps --no-build-isolation -w $(WHEEL_CHECK)/compiled $(WHEEL_CHECK)/sdist/curata-*.tar.gz
	CC=/bin/false $(BIN)/pip wheel --quiet --no-deps --no-build-isolation -w $(WHEEL_CHECK)/plain \
		$(WHEEL_CHECK)/sdist/curata-*.tar.gz
	$(BIN)/python -c "import sys, zipfile; \
		has = lambda w: any('_score_scan' in n and n.endswith('.so') for n in zipfile.ZipFile(w).namelist()); \
		sys.exit(None if has(sys.argv[1]) and not has(sys.argv[2]) else 'a wheel with or without the extension: ' \
		+ ' and '.join(sys.argv[1:]))" $(WHEEL_CHECK)/compiled/*.whl $(WHEEL_CHECK)/plain/*.whl
	$(BIN)/python -m venv --without-pip $(WHEEL_CHECK)/venv
	$(WHEEL_PIP) torch==2.13.0
	$(WHEEL_PIP) $(WHEEL_CHECK)/compiled/*.whl
	$(call QUICKSTART,compiled)
	$(WHEEL_PIP) --no-deps --force-reinstall $(WHEEL_CHECK)/plain/*.whl
	$(call QUICKSTART,plain)

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

# the recorded runs the README and docs/demo.md quote: from scratch, on a quiet machine
demo-record: $(VENV)/.demo-deps $(FASHION_MNIST) $(FORTUNES)
	rm -rf runs/demo-record runs/demo-text-record
	$(BIN)/curata demo --out runs/demo-record --record docs/demo/fashion-mnist.txt
	$(BIN)/curata demo --text --out runs/demo-text-record --target 3000 --record docs/demo/fortunes.txt

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
	rm -rf $(VENV) runs $(SANITIZED) $(WHEEL_CHECK)
