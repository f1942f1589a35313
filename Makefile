# rnn_mft: the mean-field theory of LSTMs and GRUs, and the book that reproduces the paper.
#   make setup           create .venv and install the library with every extra (idempotent)
#   make test            set up, run the test suite
#   make test-kernels    the files that compute with torch, under its default and AVX2 CPU kernels
#   make book            set up, execute every chapter (PROFILE=ci), render the HTML
#   make chapter CH=...  execute and render one chapter (PROFILE=smoke|ci|paper)
#   make figures         redraw every figure from the results store, without training
#   make reproduce       train every run of a profile (default paper; EXECUTOR, BUDGET_MIN), then the book
#   make bench           every benchmark under benchmarks/
#   make browser-check   headless Chromium over the built book
#   make clean           remove the build folder and caches
# See README.md for profiles, GPU use and local data.

PYTHON      ?= python3
VENV        ?= .venv
PROFILE     ?= ci
BUILD       ?= _build
# torch requirement used by `make setup` (installed first, so that the `torch` extra of
# `.[torch,book,test,gpu]` finds it already there). The default is the CPU build that these machines
# carry locally; on a GPU machine override it, e.g.  make setup TORCH_SPEC="torch"
# (or a CUDA wheel index: TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cu124").
TORCH_SPEC  ?= torch==2.13.0
TORCH_PIP_ARGS ?=
PYTEST_ARGS ?=

BIN   := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp

.PHONY: setup test test-kernels book chapter figures reproduce bench browser-check clean help

help:
	@sed -n '2,13p' Makefile

# Idempotent: re-runs pip only when pyproject.toml changed since the last setup.
setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[torch,book,test,gpu]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-kernels: setup
	PYTHON=$(BIN)/python BUILD=$(BUILD) bash tools/test_kernels.sh

book: setup
	$(BIN)/python tools/build_book.py --profile $(PROFILE) --build $(BUILD)

# Execute and render one chapter:  make chapter CH=gru_signal_propagation PROFILE=smoke
chapter: setup
	@test -n "$(CH)" || (echo "usage: make chapter CH=<chapter name> [PROFILE=smoke|ci|paper]"; \
	  ls book/chapters | sed 's/\.md$$//;s/^/  /'; exit 2)
	$(BIN)/python tools/build_book.py --profile $(PROFILE) --build $(BUILD) --only $(CH)

# Redraw every figure (PNG and PDF in $(BUILD)/figures) without retraining: the chapters run with
# the results store read-only, so training results come from data/results/<profile>/ (written by
# an earlier `make book` with the same PROFILE); a chapter whose results are missing says so.
figures: setup
	RNN_MFT_RESULTS_READONLY=1 $(BIN)/python tools/build_book.py --profile $(PROFILE) --build $(BUILD) --no-html

# The paper's scale (REPRODUCE_PROFILE, default paper; needs a GPU and the full data sets): trains
# every run the chapters need with EXECUTOR (inline: one after another here; local: one worker per
# visible GPU, or JOBS processes on a CPU machine; slurm: one job array through submitit, needs
# `pip install -e ".[cluster]"`), skipping runs already stored, then builds the book from the store
# as `make figures` does. NO_WAIT=1 submits and returns. SLURM settings: RNN_MFT_SLURM_PARTITION,
# _GPUS, _CPUS, _TIME_MIN, _ARRAY_PARALLELISM (README, "Running on a cluster"). With BUDGET_MIN=9
# (inline, local) training stops after 9 minutes (checkpoints in data/checkpoints/paper/, exit 0,
# prints what remains); the same command continues.
EXECUTOR ?= inline
REPRODUCE_PROFILE ?= paper
reproduce: setup
	$(BIN)/python tools/reproduce.py --profile $(REPRODUCE_PROFILE) --executor $(EXECUTOR) --build $(BUILD) \
	  $(if $(BUDGET_MIN),--budget-min $(BUDGET_MIN)) $(if $(RESTART),--restart) $(if $(NO_WAIT),--no-wait) \
	  $(if $(JOBS),--jobs $(JOBS))

bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

browser-check: setup
	$(BIN)/python tools/browser_check.py --build $(BUILD)

clean:
	rm -rf $(BUILD) .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
