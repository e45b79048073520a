# Two commands do everything: `make repro` (set up, run the pipeline) and `make test`.
# `make offline` runs the whole pipeline without network access (local data, scratch model).
# `make test` also installs the Vega libraries for the plot check (npm); it needs Chromium (apt-get install chromium).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
MIRROR ?= ../shared/datasets/multilingual-sentiments
# absolute, so that queued experiments (run in temporary workspaces) find the data too
OFFLINE_PARAMS := -S data.source=$(abspath $(MIRROR)) -S model.checkpoint=scratch \
	-S train.learning_rate=3e-4 -S train.warmup_ratio=0.1

.PHONY: setup repro offline test bench exp-show clean-venv

# Vega libraries at the versions `dvc plots show` loads, for scripts/check_plots.py (that set of
# versions is one npm calls a peer conflict: vega-lite 5.2.0 asks for vega >= 5.21, dvc loads 5.20.2)
VEGA := scripts/vega/node_modules/.installed

$(VEGA): scripts/vega/package.json scripts/vega/package-lock.json
	npm ci --prefix scripts/vega --legacy-peer-deps --no-audit --no-fund --loglevel=error
	touch $@

$(BIN)/crossling-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

setup: $(BIN)/crossling-installed

repro: setup
	dvc repro

offline: setup
	dvc exp run $(OFFLINE_PARAMS)

test: setup $(VEGA)
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/bench_training.py --data $(MIRROR)

exp-show: setup
	dvc exp show --drop '.*\.' --keep 'Experiment|Created|train\.epochs|train\.learning_rate|sample\.sizes|sample\.seed|model\.checkpoint|data\.source'

clean-venv:
	rm -rf $(VENV)
