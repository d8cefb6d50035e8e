# pgsink — run `make help` for the targets.
# Every target works on a fresh machine: it installs Node 24 into .tools/ when the
# system node is older, the npm dependencies, and the Kafka jars, as it needs them.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

NODE_DIR := $(shell ./stack/node.sh)
ifeq ($(NODE_DIR),)
$(error could not find or install Node.js 24 — see the message above)
endif
export PATH := $(NODE_DIR):$(PATH)

DEPS := node_modules/.installed

$(DEPS): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

.PHONY: deps
deps: $(DEPS) ## install Node 24 (if needed) and the npm dependencies
	@./stack/kafka.sh fetch

.PHONY: demo
demo: deps ## start the local stack, produce sample events, sink them into Postgres, print what landed
	node src/cli/demo.ts

.PHONY: bench
bench: deps ## benchmark pgsink against its baselines (1M events; ARGS="--quick" for a smoke run, ARGS="--help")
	node bench/run.ts $(ARGS)

.PHONY: test
test: deps ## run all tests (unit + integration against a real Kafka and Postgres)
	npm test

.PHONY: test-unit
test-unit: $(DEPS) ## run the unit tests only (no services)
	npm run test:unit

.PHONY: test-integration
test-integration: deps ## run the integration tests only
	npm run test:integration

KILLS ?= 50
SEED ?= $(shell echo $$RANDOM)
.PHONY: chaos
chaos: deps ## the kill -9 test with more kills: make chaos KILLS=100 SEED=7
	PGSINK_CHAOS_KILLS=$(KILLS) PGSINK_CHAOS_SEED=$(SEED) npx vitest run --project integration test/integration/chaos.test.ts

.PHONY: check
check: lint format-check typecheck ## lint, format check and typecheck

.PHONY: lint
lint: $(DEPS) ## eslint
	npm run lint

.PHONY: format
format: $(DEPS) ## prettier --write
	npm run format

.PHONY: format-check
format-check: $(DEPS) ## prettier --check
	npm run format:check

.PHONY: typecheck
typecheck: $(DEPS) ## tsc --noEmit
	npm run typecheck

.PHONY: build
build: $(DEPS) ## compile to dist/ (what the container image runs)
	npm run build

.PHONY: stack-up
stack-up: deps ## start the local Kafka broker and find or start Postgres
	./stack/kafka.sh start
	@echo "DATABASE_URL=$$(./stack/postgres.sh url)"

.PHONY: stack-down
stack-down: ## stop the local Kafka broker and a private Postgres this project started
	./stack/kafka.sh stop
	./stack/postgres.sh stop

.PHONY: clean
clean: stack-down ## stop the stack and remove state (keeps the download caches)
	rm -rf .stack dist coverage

.PHONY: distclean
distclean: clean ## also remove node_modules, .tools and the Kafka jar cache
	rm -rf node_modules .tools .cache
