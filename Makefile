# mer: `make repro` runs the whole pipeline on SynthME; `make test` runs the test suite.
# Both set everything up first on a fresh machine (Python 3.11 + pip is all they need).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | cksum | cut -d' ' -f1)
# DVC runs stage commands through the shell: the venv must come first on PATH
export PATH := $(BIN):$(PATH)

.PHONY: setup repro test bench params clean-venv

setup: $(STAMP) .dvc/config

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11" >&2; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $@

.dvc/config:
	$(BIN)/dvc init --force
	$(BIN)/dvc config hydra.enabled true

repro: setup
	$(BIN)/dvc repro
	@echo
	@cat reports/summary.md

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m benchmarks

params: setup
	$(BIN)/python -m mer params --write
