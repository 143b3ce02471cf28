# kubegpu.core — every target does its own set-up, idempotently, on a fresh Debian/Ubuntu machine.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# The real charts the lab and the tests install: ../shared/upstream/charts beside the checkout when it
# is there (absolute path); otherwise make demo fetches them into .cache/charts (tests/support/lab/charts.py).
UPSTREAM_CHARTS := $(abspath $(CURDIR)/../shared/upstream/charts)
ifneq ($(wildcard $(UPSTREAM_CHARTS)/*.tgz),)
export KUBEGPU_CHARTS_DIR ?= $(UPSTREAM_CHARTS)
endif
# pytest's own arguments, e.g. `make unit PYTEST_ARGS='-k containerd'`
PYTEST_ARGS ?=
# pytest worker processes for `make pytest` (pytest-xdist; each test file stays in one worker,
# so its module fixtures start once). Most of a test's time is spent waiting on real binaries
# (containerd, helm, ansible-playbook), so two workers pay off on two cores. 0 = no xdist.
PYTEST_WORKERS ?= 2

# the lab's Debian suite for `make demo` (bookworm or trixie, the node images' suites; containerd 1.6 or 1.7):
# `make demo SUITE=bookworm`; empty: KUBEGPU_LAB_SUITE, else the lab's default, trixie (tests/support/lab)
SUITE ?=
# the lab's device stack for `make demo` (vgpu_scheduler, nvidia_device_plugin or dra_driver): `make demo STACK=dra_driver`;
# empty: the lab inventory's, vgpu_scheduler
STACK ?=

# the molecule scenarios `make molecule` runs, e.g. `make molecule MOLECULE_SCENARIOS=node_python`
# (default: every scenario in extensions/molecule), MOLECULE_JOBS at a time (default 2)
MOLECULE_SCENARIOS ?=

.PHONY: help setup apt-deps kube-clients docker-daemon node-wheels node-images molecule-collections molecule molecule-then-matrix test lint ruff ansible-lint sanity unit integration pytest matrix matrix-ci fuzz bench demo demo-down build doc changelog clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-test.txt
	touch $@

apt-deps:  ## install the Debian packages the tests need (only those missing)
	hack/apt-deps

setup: apt-deps $(STAMP) kube-clients docker-daemon  ## venv in .venv with every Python dependency, apt packages, a Docker daemon

kube-clients: $(STAMP)  ## real kubectl and helm for the tests, in .cache/bin
	hack/install-kube-clients

docker-daemon: apt-deps  ## Debian's dockerd, started in the background when no daemon answers (log: .cache/dockerd.log)
	hack/docker-daemon

node-wheels: $(STAMP)  ## node_python's pinned wheels in .cache/wheels/node_python (the lab and molecule copy them to the nodes)
	$(BIN)/python -m tests.support.lab wheels

node-images: $(STAMP) docker-daemon  ## kubegpu-node:bookworm and :trixie (debootstrap, docker import), rebuilt when their recipe changes
	$(BIN)/python -m tests.support.images

molecule-collections: $(STAMP)  ## community.docker and ansible.posix in .cache/molecule-collections (molecule, the lab's docker connection)
	hack/molecule-collections

molecule: setup node-images node-wheels molecule-collections  ## the roles' molecule scenarios on the node images, MOLECULE_JOBS at a time (MOLECULE_SCENARIOS: a few)
	hack/molecule-scenarios $(MOLECULE_SCENARIOS)

test: setup lint sanity  ## everything CI runs: lint, sanity, then pytest beside molecule and the matrix's ends
	@# pytest beside molecule-then-matrix: all spend most of their time waiting on containers, apt and
	@# real binaries, and molecule with the matrix's ends takes less time than pytest, so the matrix no
	@# longer waits for pytest; molecule prints one line per scenario (logs in .cache/molecule-logs)
	$(MAKE) --no-print-directory -j2 pytest molecule-then-matrix

# molecule, then the matrix's ends, whether molecule passed or not (both are reported); fails if either failed
molecule-then-matrix:
	rc=0; $(MAKE) --no-print-directory molecule || rc=$$?; $(MAKE) --no-print-directory matrix-ci || rc=$$?; exit $$rc

lint: ruff ansible-lint  ## ruff, ansible-lint (production profile) and yamllint

ruff: $(STAMP)
	ruff check .
	ruff format --check .

ansible-lint: $(STAMP)
	ansible-lint --profile production --offline

sanity: $(STAMP)  ## ansible-test sanity on a copy laid out as ansible_collections/kubegpu/core
	hack/sanity

unit: $(STAMP)  ## unit tests only
	hack/pytest tests/unit $(PYTEST_ARGS)

integration: setup node-images node-wheels molecule-collections  ## integration tests only (against the test bench)
	hack/pytest tests/integration $(PYTEST_ARGS)

pytest: setup node-images node-wheels molecule-collections  ## unit and integration tests in one run, one summary (node Pythons: see matrix)
	hack/pytest -m 'not node_python' $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder) tests/unit tests/integration $(PYTEST_ARGS)

matrix: setup  ## every supported ansible-core (2.17-2.21) and node Python (3.9-3.13): sanity, unit, module runs
	$(PYTHON) hack/matrix.py

matrix-ci: setup  ## the matrix's ends: oldest and newest ansible-core and node Python (part of make test)
	$(PYTHON) hack/matrix.py --ci

fuzz: setup  ## property-based tests with many examples (KUBEGPU_HYPOTHESIS_EXAMPLES=N to change)
	KUBEGPU_HYPOTHESIS_PROFILE=fuzz hack/pytest -m property tests/unit tests/integration $(PYTEST_ARGS)

bench: setup  ## scale and speed figures, printed as tables
	$(BIN)/python -m benchmarks

demo: setup  ## the lab: site.yml on three simulated GPU nodes, then the readiness report (SUITE=bookworm|trixie: the nodes' Debian; STACK=dra_driver, ...)
	$(if $(SUITE),KUBEGPU_LAB_SUITE=$(SUITE) )$(if $(STACK),KUBEGPU_LAB_STACK=$(STACK) )hack/demo

demo-down:  ## remove what make demo created (containers, API server, images only if the lab built them)
	hack/demo down

build: $(STAMP)  ## kubegpu-core-<version>.tar.gz
	ansible-galaxy collection build --force

doc: $(STAMP)  ## list the collection's modules with ansible-doc
	ansible-doc -t module -l kubegpu.core

changelog: $(STAMP)  ## lint the changelog fragments
	antsibull-changelog lint

clean:
	rm -rf .cache .pytest_cache .ruff_cache tests/output kubegpu-core-*.tar.gz
