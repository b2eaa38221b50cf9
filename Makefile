# Two set-up commands: `make run` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: install run demo test lint typecheck migrations-check bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,celery]"
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/python manage.py migrate --noinput
	@echo ""
	@echo "  Bitrix24 handler URL: http://$(HOST):$(PORT)/imbot/events/"
	@echo "  (Bitrix24 needs it on a public HTTPS address: put a tunnel or proxy in front.)"
	@echo ""
	@echo "  Handlers run in imbot_worker beside the server (Ctrl-C stops both)."
	@echo ""
	$(BIN)/python manage.py imbot_serve $(HOST):$(PORT)

# A simulated Bitrix24 portal talks to the example bot, served on DEMO_PORT for the occasion.
DEMO_PORT ?= 8001

demo: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py imbot_simulate --serve $(DEMO_PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy imbot_app project tests bench

migrations-check: install
	$(BIN)/python manage.py makemigrations --check --dry-run

test: lint typecheck migrations-check
	$(BIN)/pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) db.sqlite3 .mypy_cache .ruff_cache .pytest_cache .hypothesis
