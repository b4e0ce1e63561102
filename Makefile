# Watchfloor: `make demo` and `make test` are the whole set-up on a fresh machine.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install demo test test-brokers brokers lint format bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/watchfloor demo

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

# the suite against local brokers (start them with `make brokers`): NATS JetStream + Mosquitto
test-brokers: $(STAMP)
	WATCHFLOOR_BUS_URL=nats://127.0.0.1:4222 WATCHFLOOR_MQTT_URL=mqtt://127.0.0.1:1883 \
	  $(BIN)/pytest $(PYTEST_ARGS)

# Debian's nats-server (JetStream) and mosquitto on loopback, in the background, for test-brokers
brokers:
	mkdir -p var/nats
	nats-server -js -a 127.0.0.1 -p 4222 -sd var/nats -l var/nats/nats.log &
	printf 'listener 1883 127.0.0.1\nallow_anonymous true\n' >var/mosquitto.conf
	mosquitto -c var/mosquitto.conf -d

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
