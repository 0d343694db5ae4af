# Two commands for a new user: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
HOST ?= 127.0.0.1
PORT ?= 8000
LOG_LEVEL ?= INFO
export HOST PORT LOG_LEVEL
# When make started, so `make run` can say how long it took to the first page.
STARTED := $(shell date +%s.%N)

.PHONY: run test lint check-python browser postgres-client bench clean

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "The portal needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) --version)."; exit 1; }

# The runtime only (what `make run` and production need) ...
$(BIN)/.installed: requirements.txt | check-python
	@echo "Installing the runtime into $(VENV) …"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip
	@$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

# ... and the test and hygiene tools on top of it for `make test`.
$(BIN)/.installed-dev: requirements-dev.txt $(BIN)/.installed
	@$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

# Migrate, load the default runbooks and the demo users, start web + worker + beat on
# http://$(HOST):$(PORT), then print the address, the users and new passwords and the time taken.
# Without DIGITALOCEAN_TOKEN, deploys go to the simulated DigitalOcean (manage.py do_simulator),
# which run_portal starts beside web, worker and beat.
DO_SIMULATOR_PORT ?= 8790
run: $(BIN)/.installed
	@$(if $(DIGITALOCEAN_TOKEN),,DIGITALOCEAN_API_URL=http://127.0.0.1:$(DO_SIMULATOR_PORT) DIGITALOCEAN_TOKEN=sim-token) \
	  $(PY) manage.py run_portal --started-at $(STARTED)

# The browser tests drive Debian's Chromium; install it when it is missing and we may.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Install Chromium first: sudo apt-get install chromium"; exit 1; fi; }

# Backups and their verification run pg_dump and pg_restore; install the client when missing.
postgres-client:
	@command -v pg_dump >/dev/null && command -v pg_restore >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null; \
	  else echo "Install the PostgreSQL client first: sudo apt-get install postgresql-client"; exit 1; fi; }

lint: $(BIN)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) manage.py check

# The tests keep their files (SQLite, file broker, metrics) apart from a running `make run`.
test: lint browser postgres-client
	PORTAL_VAR_DIR="$(CURDIR)/var/test" $(BIN)/pytest -n 2 --dist loadgroup

# Benchmarks print figures against references measured in the same run (see bench/README.md).
# The image corpus is built from the sample photos scikit-image ships (files only, no import).
bench: $(BIN)/.installed-dev
	$(BIN)/pip install --quiet --no-deps scikit-image==0.26.0
	$(PY) bench/checklists.py
	$(PY) bench/gdpr.py
	$(PY) bench/health.py
	$(PY) bench/images.py
	$(PY) bench/incidents.py
	$(PY) bench/uploads.py
	$(PY) bench/maintenance.py
	$(PY) bench/runbook_import.py
	$(PY) bench/status.py
	$(PY) bench/load.py
	@if [[ "$$DATABASE_URL" == postgres* ]]; then $(PY) bench/backups.py; \
	  else echo "bench/backups.py needs PostgreSQL: set DATABASE_URL=postgres://…"; fi

clean:
	rm -rf var/staticfiles var/celery var/cache
