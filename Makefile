# The two commands of the README: `make run` and `make test`. Both install what is missing.
VENV ?= $(HOME)/.cache/chatwarden/venv
WARDEN := $(VENV)/bin/warden
export WARDEN_VENV := $(VENV)

.PHONY: install run test lint stack-up stack-down stack-status schemas

install:
	@scripts/install.sh

run: install
	$(WARDEN) stack up
	$(WARDEN) run

test: install
	scripts/test.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

schemas: install
	$(VENV)/bin/python -m schemas.export

stack-up: install
	$(WARDEN) stack up

stack-down:
	$(WARDEN) stack down

stack-status:
	$(WARDEN) stack status
