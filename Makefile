# rtm — every entry point a person or CI uses. Each target installs what it needs first and
# is safe to run again.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
INVENTORY ?= inventory/lab
ARTIFACTS := artifacts
STAMPS := $(VENV)/.stamps
# Debian packages the controller needs: a JDK and Maven for the artifact cache, nspawn and
# debootstrap for the lab, ssh for Ansible, vagrant to validate the Vagrantfile.
APT_PACKAGES := python3-venv openjdk-17-jdk-headless maven systemd-container debootstrap \
	iproute2 openssh-client rsync vagrant

export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible/ansible.cfg
export PYTHONUNBUFFERED := 1

.PHONY: lock help system-deps venv artifacts lab-up lab-down lab-ha-up lab-ha-down deploy demo \
	test test-unit test-integration test-lab lint bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

system-deps: ## apt-get install the controller's Debian packages (only what is missing)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo ">> installing Debian packages:" $$missing; \
		if [ "$$(id -u)" -ne 0 ]; then echo "run as root (or sudo) to install them" >&2; exit 1; fi; \
		DEBIAN_FRONTEND=noninteractive apt-get update -q; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

venv: $(STAMPS)/venv ## the controller virtualenv (.venv) with rtm and its tools

$(STAMPS)/venv: pyproject.toml
	@echo ">> creating the virtualenv in $(VENV) (pyspark is large: a few minutes the first time)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip 'setuptools>=77' wheel
	$(BIN)/pip install --progress-bar off -e '.[consumer,controller]'
	@mkdir -p $(STAMPS) && touch $@

artifacts: system-deps venv ## fill the controller-side artifact cache (Kafka, Spark jars, wheels)
	$(BIN)/rtm-artifacts --dir $(ARTIFACTS) build

LOCKS := app/rtm/artifacts/locks
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links
lock: venv ## pin the hosts' Python dependencies with their hashes, from pyproject.toml
	$(PIP_COMPILE) --output-file $(LOCKS)/producer.txt pyproject.toml
	$(PIP_COMPILE) --extra consumer --output-file $(LOCKS)/consumer.txt pyproject.toml

lab-up: system-deps venv ## boot the container lab of INVENTORY (default inventory/lab)
	$(BIN)/rtm-lab up -i $(INVENTORY)

lab-down: venv ## kill and remove the lab of INVENTORY (its hosts keep nothing)
	$(BIN)/rtm-lab down -i $(INVENTORY)

deploy: venv ## ansible-playbook -i INVENTORY ansible/site.yml
	$(BIN)/ansible-playbook -i $(INVENTORY) ansible/site.yml

demo: artifacts lab-up ## the whole rehearsal: lab, deploy, sample data, fab status, first alerts
	$(BIN)/python -m rtm.demo --inventory $(INVENTORY)

test: system-deps venv artifacts lint ## lint, then the whole test suite (unit, integration, lab)
	$(BIN)/pytest --durations=30 tests/unit tests/integration tests/lab

test-unit: venv ## unit tests only (no services)
	$(BIN)/pytest tests/unit

test-integration: artifacts ## app against a real broker and Spark
	$(BIN)/pytest tests/integration

test-lab: system-deps artifacts ## end-to-end tests on the container lab
	$(BIN)/pytest tests/lab

lint: venv ## ruff and ansible-lint
	$(BIN)/ruff check app tests bench fabfile.py
	$(BIN)/ruff format --check app tests bench fabfile.py
	$(BIN)/ansible-lint

bench: artifacts ## throughput, alert latency, deployment on the labs; results in bench/results/
	$(BIN)/python -m bench

clean: ## remove the virtualenv and the artifact cache (the lab image cache stays)
	rm -rf $(VENV) $(ARTIFACTS)
