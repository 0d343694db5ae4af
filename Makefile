# Two commands for a new user: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint check-python browser bench clean

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "The portal needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) --version)."; exit 1; }

$(BIN)/.installed: requirements.txt | check-python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

# Migrate, load the default runbooks and the demo users, print new passwords once, then start
# web + worker + beat on http://$(HOST):$(PORT).
run: $(BIN)/.installed
	$(PY) manage.py setup_portal --demo
	$(PY) manage.py collectstatic --noinput --verbosity 0
	@echo "Starting the portal on http://$(HOST):$(PORT)/ (Ctrl-C stops web, worker and beat)"
	PATH="$(CURDIR)/$(BIN):$$PATH" GUNICORN_CMD_ARGS="--bind $(HOST):$(PORT)" \
	  $(BIN)/honcho --procfile Procfile start web worker beat

# The browser tests drive Debian's Chromium; install it when it is missing and we may.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Install Chromium first: sudo apt-get install chromium"; exit 1; fi; }

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) manage.py check

# The tests keep their files (SQLite, file broker, metrics) apart from a running `make run`.
test: lint browser
	PORTAL_VAR_DIR="$(CURDIR)/var/test" $(BIN)/pytest -n 2 --dist loadgroup

# Benchmarks print figures against references measured in the same run (see bench/README.md).
# The image corpus is built from the sample photos scikit-image ships (files only, no import).
bench: $(BIN)/.installed
	$(BIN)/pip install --quiet --no-deps scikit-image==0.26.0
	$(PY) bench/checklists.py
	$(PY) bench/health.py
	$(PY) bench/images.py
	$(PY) bench/incidents.py
	$(PY) bench/runbook_import.py

clean:
	rm -rf var/staticfiles var/celery var/cache
