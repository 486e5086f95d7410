# One entry point for every machine: only python3 and pip are assumed; uv is bootstrapped when missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --frozen
PACKAGES := $(notdir $(wildcard packages/*))
PYTEST := OMP_NUM_THREADS=1 $(RUN) pytest -q
export OMP_NUM_THREADS := 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: help uv setup test-all test lint format demo bench clean

help:
	@echo "make setup | test-all | test PKG=name | lint | demo | bench"

uv:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv>=0.9,<0.14"

setup: uv
	@$(UV) sync --frozen --all-packages --quiet

# Each suite in its own pytest process (accelerate keeps process-wide state); all run, then the status is reported.
test-all: setup
	@status=0; for dir in shared/visioncore/tests $(addsuffix /tests,$(addprefix packages/,$(PACKAGES))) tests; do \
		[ -d $$dir ] || continue; \
		echo "== $$dir"; $(PYTEST) $$dir || status=1; \
	done; exit $$status

test: setup
	@[ -n "$(PKG)" ] || { echo "usage: make test PKG=<visioncore|$(PACKAGES)>"; exit 2; }
	@if [ "$(PKG)" = visioncore ]; then $(PYTEST) shared/visioncore/tests; else $(PYTEST) packages/$(PKG)/tests; fi

lint: setup
	@$(RUN) ruff check . && $(RUN) ruff format --check .

format: setup
	@$(RUN) ruff check --fix . && $(RUN) ruff format .

# visioncore's own demo, then every package's `<cli> demo`, then one summary table from their metrics.json files.
demo: setup
	@status=0; rm -rf runs/demo; \
	$(RUN) visioncore demo --out runs/demo/visioncore || status=1; \
	for pkg in $(PACKAGES); do \
		echo "== $$pkg demo"; start=$$(date +%s); $(RUN) $$pkg demo --out runs/demo/$$pkg || status=1; \
		echo "$$pkg $$(( $$(date +%s) - start ))" >> runs/demo/wall_seconds.txt; \
	done; \
	echo "== demo wall time per package (s, imports included)"; cat runs/demo/wall_seconds.txt; \
	$(RUN) visioncore summarize runs/demo; exit $$status

# Every package's bench JSON, then each CLI's `--help` time over `python -c "import torch"` (measured in one run).
bench: setup
	@mkdir -p runs/bench; status=0; for pkg in $(PACKAGES); do \
		echo "== $$pkg bench"; $(RUN) $$pkg bench > runs/bench/$$pkg.json && cat runs/bench/$$pkg.json || status=1; \
	done; \
	echo "== startup (--help / import torch)"; \
	$(RUN) visioncore startup-time visioncore $(PACKAGES) > runs/bench/startup.json && cat runs/bench/startup.json || status=1; \
	exit $$status

clean:
	rm -rf runs dist .ruff_cache
