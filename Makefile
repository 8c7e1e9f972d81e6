# The two commands of the README: `make run` and `make test`. Both install what is missing.
VENV ?= $(HOME)/.cache/chatwarden/venv
WARDEN := $(VENV)/bin/warden
export WARDEN_VENV := $(VENV)
# The cached venv's `warden` runs the checkout last installed into it; the stack targets act on
# this checkout's servers all the same (`make stack-down` in one clone stops that clone's).
export WARDEN_STACK__DIR ?= $(CURDIR)/.stack

.PHONY: install run test unit chaos lint stack-up stack-down stack-status schemas

install:
	@scripts/install.sh

run: install
	$(WARDEN) stack up
	$(WARDEN) run

test: install
	scripts/test.sh

# The fast tier alone: tests/unit with no server started or needed (no lint, no stack).
unit: install
	$(VENV)/bin/python -m pytest tests/unit -m "not integration"

# The fault trials of tests/reliability at full size (9,000 messages, 30 s outages); the
# README's "Failure behaviour" table comes from benchmarks/results/chaos.md.
chaos: install
	scripts/test.sh --no-lint tests/reliability --chaos-messages 9000 --chaos-rate 300 --chaos-outage-s 30 \
		--chaos-report benchmarks/results/chaos.json

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
