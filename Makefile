# Two commands do everything: `make repro` (set up, run the pipeline) and `make test`.
# `make offline` runs the whole pipeline without network access (local data, scratch model).
# `make test` also installs the Vega libraries for the plot check (npm); it needs Chromium (apt-get install chromium).
PYTHON ?= python3
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
# output through the warning filter (a pipe) arrives line by line, not in blocks
export PYTHONUNBUFFERED := 1
# The upstream CSV layout, <language>/{train,valid,test}.csv: README, "Without network access".
MIRROR ?= external/multilingual-sentiment-datasets/data
# A value as one shell word, whatever quotes, & or ; it holds (a MIRROR at .../R&D/... ran dvc in the background);
# make itself reads a $ in a value first: write $$
quote = '$(subst ','\'',$(1))'
# absolute, so that queued experiments (run in temporary workspaces) find the data too; not $(abspath), which takes
# a MIRROR with a space for two paths (.../my data -> ".../my $(CURDIR)/data")
MIRROR_ABS := $(if $(filter /%,$(firstword $(MIRROR))),$(MIRROR),$(CURDIR)/$(MIRROR))
OFFLINE_PARAMS := -S $(call quote,data.source=$(MIRROR_ABS)) -S model.checkpoint=scratch \
	-S train.learning_rate=3e-4 -S train.warmup_ratio=0.1
# In a clone without dvc.lock, `dvc exp run` first checks out every output it does not have yet and warns about
# each one ("No file hash info found ... It won't be created"): nothing is missing, so those lines are dropped
# (the recipes echo the dvc command without this filter).
QUIET_FIRST_RUN = 2>&1 | grep -v --line-buffered "^WARNING: No file hash info found for .*It won't be created.$$"
# Extra overrides for the pipeline targets, e.g. make offline SET="train.epochs=3 train.seeds=[1,2,3]"
SET ?=
# NAME=<name> names the experiment (for `python -m crossling.compare <name> <other>`)
NAME ?=
EXTRA = $(foreach kv,$(SET),-S $(call quote,$(kv))) $(if $(NAME),-n $(call quote,$(NAME)))
# `dvc exp run` writes its -S overrides into params.yaml before any stage runs; after a failed run the next one
# would inherit them without a word: params.yaml goes back to what it was before, and the user is told.
define exp_run
	@printf '%s\n' $(call quote,dvc exp run $(strip $(1)))
	@kept=$$(mktemp) && cp params.yaml $$kept && { dvc exp run $(1) $(QUIET_FIRST_RUN) || { status=$$?; \
	  cp $$kept params.yaml; rm -f $$kept; echo "make: dvc exp run failed; params.yaml is back as it was before \
	(without this run's overrides)" >&2; exit $$status; }; } && rm -f $$kept
endef
# The UMSAB languages of the dataset (Barbieri et al., LREC 2022): all tweets, balanced, 870 test texts each
UMSAB_PARAMS := -S 'data.languages=[english,french,arabic,hindi,german,italian,portuguese,spanish]' \
	-S data.dev_split=validation -S 'sample.sizes=[100,500,1000,1800]'
SMOKE_PARAMS := -S 'data.languages=[english,french]' -S 'sample.sizes=[200]' -S train.epochs=1

.PHONY: setup repro offline umsab smoke slurm undo test bench bench-grouping bench-storage pretrained exp-show clean-venv check-python check-mirror

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "make: $(PYTHON) is $$($(PYTHON) --version 2>/dev/null || echo missing); crossling needs Python >= 3.11: run make PYTHON=python3.12 (or another >= 3.11)" >&2; exit 2; }

check-mirror:
	@test -d $(call quote,$(MIRROR)) || { echo "make: no data at MIRROR="$(call quote,$(MIRROR))": clone the upstream \
	CSV files there (README, Without network access) or pass MIRROR=<dir with <language>/{train,valid,test}.csv>" >&2; \
	exit 2; }

# Vega libraries at the versions `dvc plots show` loads, for scripts/check_plots.py (that set of
# versions is one npm calls a peer conflict: vega-lite 5.2.0 asks for vega >= 5.21, dvc loads 5.20.2)
VEGA := scripts/vega/node_modules/.installed

$(VEGA): scripts/vega/package.json scripts/vega/package-lock.json
	npm ci --prefix scripts/vega --legacy-peer-deps --no-audit --no-fund --loglevel=error
	touch $@

$(BIN)/crossling-installed: pyproject.toml
	@$(MAKE) --no-print-directory check-python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

setup: $(BIN)/crossling-installed

repro: setup
	dvc repro

offline: setup check-mirror
	$(call exp_run,$(OFFLINE_PARAMS) $(EXTRA))
	@echo "make offline: report in reports/results.md, headline in metrics/headline.json"

# The published UMSAB protocol on its eight languages: the dataset's own validation split as dev split,
# samples from train only (up to 1800 of its 1839 texts per language).
umsab: setup check-mirror
	$(call exp_run,$(OFFLINE_PARAMS) $(UMSAB_PARAMS) $(EXTRA))
	@echo "make umsab: report in reports/results.md, headline in metrics/headline.json"

# The whole pipeline on two languages, one size, one epoch: a check that everything runs, not a result.
smoke: setup check-mirror
	$(call exp_run,$(OFFLINE_PARAMS) $(SMOKE_PARAMS) $(EXTRA))
	@echo "make smoke: report in reports/results.md (1 epoch of a small model: plumbing, not results)"

# The grid as a Slurm job array (docs/scaling.md): preparation job, one task per training stage, final job.
# Resources: params.yaml's slurm section, or e.g. make slurm SLURM_ARGS="--gpus 2 --partition gpu -- --qos=high"
SLURM_ARGS ?=
slurm: setup
	$(BIN)/python -m crossling.slurm $(SLURM_ARGS)

# Back to the last commit's params and results (an experiment's outputs, training logs included, stay in the DVC
# cache; dvc checkout restores them).
RESULTS := params.yaml dvc.lock metrics plots reports
undo:
	{ git ls-files -z -- $(RESULTS); git ls-tree -rz --name-only HEAD -- $(RESULTS); } | sort -zu | \
	  GIT_LITERAL_PATHSPECS=1 git restore --source=HEAD --staged --worktree --pathspec-from-file=- --pathspec-file-nul
	git clean -fdq -- $(filter-out params.yaml,$(RESULTS))
	@if [ -f dvc.lock ]; then dvc checkout --quiet; fi

test: setup $(VEGA)
	$(BIN)/python -m pytest

bench: setup check-mirror
	$(BIN)/python benchmarks/bench_training.py --data $(call quote,$(MIRROR))

bench-grouping: setup check-mirror
	$(BIN)/python benchmarks/group_by_length.py --data $(call quote,$(MIRROR))

bench-storage: setup
	$(BIN)/python benchmarks/storage.py

pretrained: setup check-mirror
	$(BIN)/python benchmarks/pretrained_run.py --data $(call quote,$(MIRROR))

# One row per experiment: headline means and the params that differ between the experiments shown
# (`dvc exp show` shows everything; ARGS="-A" for the experiments of every commit). Experiments without
# metrics (failed, queued, running) are named below the table with their state.
exp-show: setup
	@$(BIN)/python scripts/exp_table.py $(ARGS)

clean-venv:
	rm -rf -- $(call quote,$(VENV))
