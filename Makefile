# rlhf-studio: `make run` starts the app on the demo project, `make test` runs every test.
# Both set up what they need first (virtual environment, pinned dependencies, browser, PostgreSQL).

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8501

.PHONY: setup run demo test test-fast browser postgres mujoco lint lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	@bash scripts/setup_mujoco.sh
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rlhf demo

run: demo
	$(BIN)/rlhf app --host $(HOST) --port $(PORT)

browser:
	@bash scripts/setup_browser.sh

postgres:
	@bash scripts/setup_postgres.sh

mujoco:
	@bash scripts/setup_mujoco.sh

test: lint browser postgres mujoco
	$(BIN)/python -m pytest -q --durations=25

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not browser"

# ruff, then the import contracts of pyproject.toml: no cycles, and imports only downwards.
lint: $(STAMP)
	$(BIN)/ruff check app db rlhf_core tests scripts
	$(BIN)/lint-imports

lock: $(STAMP)
	{ echo "# Tested versions of every dependency (pip constraints). Regenerate with: make lock"; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^rlhf-studio' | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache
