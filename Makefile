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
deps: $(DEPS) ## install Node 24 (if needed), the npm dependencies and the jars of KAFKA_VERSION (4.4.0)
	@./stack/kafka.sh fetch

.PHONY: demo
demo: deps ## start (or reuse) the local stack, produce sample events, sink them into Postgres, print what landed; KAFKA_VERSION=3.9 for Kafka 3.9.2
	@# The heap settings bin/pgsink and the deployment run pgsink with (its memory bound).
	node --max-old-space-size=160 --max-semi-space-size=8 src/cli/demo.ts

.PHONY: bench
bench: deps ## benchmark pgsink against its baselines (1M events; ARGS="--quick" for a smoke run, ARGS="--help"); stops the broker it started
	node bench/run.ts $(ARGS)

.PHONY: test
test: deps ## unit tests, the stack scripts' test, then the integration suite on Kafka 4.4.0 and on 3.9.2 (KAFKA_TEST_VERSIONS)
	npm test

.PHONY: test-unit
test-unit: $(DEPS) ## run the unit tests only (no services)
	npm run test:unit

.PHONY: test-integration
test-integration: deps ## the integration suite only, once per KAFKA_TEST_VERSIONS (4.4.0 3.9.2)
	npm run test:integration

.PHONY: test-stack
test-stack: deps ## the stack scripts' test only (real brokers: reuse, free ports, stop-all)
	npm run test:stack

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
stack-up: deps ## start (or reuse) the local Kafka broker and find or start Postgres; prints both addresses
	@b=$$(./stack/kafka.sh start) && echo "KAFKA_BROKERS=$$b"
	@u=$$(./stack/postgres.sh url) && echo "DATABASE_URL=$$u"

.PHONY: stack-down
stack-down: ## stop what this checkout left running: the demo's broker, a bench's or test run's, the private Postgres
	./stack/kafka.sh stop-all
	./stack/postgres.sh stop

.PHONY: clean
clean: stack-down ## stop the stack and remove state (keeps the download caches)
	rm -rf .stack dist coverage

.PHONY: distclean
distclean: clean ## also remove node_modules, .tools and the Kafka jar cache
	rm -rf node_modules .tools .cache
