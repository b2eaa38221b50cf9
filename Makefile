# Two set-up commands: `make run` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
DOCS_PORT ?= 8002

.PHONY: install run demo demo-fetch test lint typecheck migrations-check docs docs-check package bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,celery,docs]"
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

# A simulated Bitrix24 portal talks to the example bot, served on DEMO_PORT for the occasion;
# the fake Bitrix24 listens on DEMO_FAKE_PORT.  Both on 127.0.0.1.
DEMO_PORT ?= 8001
DEMO_FAKE_PORT ?= 8765

# DEMO_API=v2 makes it a Chatbots 2.0 bot: DEMO_MODE=fetch (the default for v2, also
# `make demo-fetch`) has no public address at all -- the fake queues the bot's events and
# imbot_simulate polls imbot.v2.Event.get, as imbot_worker does; DEMO_MODE=webhook serves it
# on DEMO_PORT like the v1 demo.
DEMO_API ?= v1
DEMO_MODE ?= fetch

demo: install
	$(BIN)/python manage.py migrate --noinput
ifeq ($(DEMO_API),v2)
	$(BIN)/python manage.py imbot_simulate --api v2 --mode $(DEMO_MODE) \
		$(if $(filter webhook,$(DEMO_MODE)),--serve $(DEMO_PORT)) --fake-port $(DEMO_FAKE_PORT)
else
	$(BIN)/python manage.py imbot_simulate --serve $(DEMO_PORT) --fake-port $(DEMO_FAKE_PORT)
endif

demo-fetch:
	$(MAKE) demo DEMO_API=v2 DEMO_MODE=fetch

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy imbot_app project tests bench

migrations-check: install
	$(BIN)/python manage.py makemigrations --check --dry-run

# The documentation site (MkDocs Material) on 127.0.0.1:DOCS_PORT, rebuilt on every change.
docs: install
	$(BIN)/mkdocs serve -a 127.0.0.1:$(DOCS_PORT)

# A strict build fails on a broken link, a missing snippet or an unlisted page (~3 s).
docs-check: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir $(CURDIR)/site

# The sdist and wheel, and PyPI's own check of their metadata (.ci/run).
package: install
	rm -rf dist
	$(BIN)/python -m build --outdir dist . >/dev/null
	$(BIN)/twine check --strict dist/*

test: lint typecheck migrations-check docs-check
	$(BIN)/pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) db.sqlite3 .mypy_cache .ruff_cache .pytest_cache .hypothesis site dist
