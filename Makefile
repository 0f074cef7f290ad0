# The two commands a newcomer needs:  make run  and  make test.
# Both create .venv and install what they need first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-clock lint check install browsers clean translations

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## run: install, then the whole service on embedded defaults (SQLite, simulator without credentials)
run: $(STAMP)
	$(BIN)/citoyen run

## test: install, then lint (ruff, the import layers) and the whole test suite (PostgreSQL cases skip if no server is running)
test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports
	$(BIN)/citoyen flows check
	$(BIN)/pytest $(PYTEST_ARGS)

## test-clock: the tests that read the date, again with the wall clock a year ahead (needs
## libfaketime: apt-get install faketime; the monotonic clock stays, see tests/conftest.py);
## CI runs it after `make test`
test-clock: $(STAMP)
	FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f '+365d' $(BIN)/pytest -m clock $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

## translations: extract the admin's strings, update the French catalogue, compile it
translations: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -o src/citoyen/web/translations/messages.pot .
	$(BIN)/pybabel update -i src/citoyen/web/translations/messages.pot -d src/citoyen/web/translations -l fr --no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel compile -d src/citoyen/web/translations -l fr

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
