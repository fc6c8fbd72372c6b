# Cutor's two commands: `make up` (the stack and the examples) and `make test`.
# Both run the idempotent setup first; both need root.

.PHONY: setup up down test lint

setup:
	bash scripts/setup.sh

up: setup
	bash scripts/up.sh

down:
	bash scripts/down.sh

test: setup
	.venv/bin/pytest

lint:
	.venv/bin/ruff check runtime functions tests bench
	.venv/bin/mypy
