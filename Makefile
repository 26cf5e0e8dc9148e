# One entry point for developers, the README and CI.
#   make demo   set up a fresh machine and run the embedded demo
#   make test   set up everything the tests need and run all checks and tests
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# Debian packages the tests use: netns/veth (iproute2), nftables, a real DNS server (bind9),
# dig/nsupdate (bind9-dnsutils), ping.
DEBS := iproute2 nftables bind9 bind9-utils bind9-dnsutils iputils-ping
STAMP := $(VENV)/.installed

.PHONY: setup system-packages venv peers check lint typecheck imports test test-only demo bench crds clean

setup: system-packages venv peers

# The real peers (tailscaled, Headscale, kube-apiserver, etcd, kubectl, CoreDNS) from the pinned
# Go modules under testing/peers/, into .peers/bin, and the upstream CRDs (Gateway API, Envoy
# Gateway, cert-manager) out of theirs into .peers/crds; only what is missing or changed.
peers:
	@testing/peers/build

system-packages:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "note: not root; these Debian packages are missing and their tests will skip:" $$missing; \
	  fi; \
	fi

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "installing Python packages into $(VENV) (log: $(VENV)/pip.log)"
	@$(PY) -m pip install --upgrade pip > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	@$(PY) -m pip install -e ".[dev]" >> $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	@$(PY) -c "import tailwire.shared, tailwire.cli" && touch $(STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

imports: venv
	$(BIN)/lint-imports

check: lint typecheck imports

test: setup check test-only

# The built peers come first on PATH, so tests that run `kubectl` use the pinned release's.
test-only: venv peers
	PATH="$(CURDIR)/.peers/bin:$$PATH" $(BIN)/pytest

demo: setup
	$(BIN)/tailwire demo

# make bench: every bench/bench_*.py, each with a time limit (~15 min in all on 2 CPUs); the
# JSON goes to $(BENCH_OUT) and its tables into docs/benchmarks.md.
# make bench BENCH_ARGS=--quick: the smoke sizes (about a minute; the doc is not touched).
BENCH_ARGS ?=
BENCH_OUT ?= $(if $(findstring --quick,$(BENCH_ARGS)),$(VENV)/bench-quick.json,docs/benchmarks/results.json)
bench: setup
	@$(PY) bench/run.py $(BENCH_ARGS) --out $(BENCH_OUT) > /dev/null; status=$$?; \
	$(PY) bench/report.py $(BENCH_OUT) --update docs/benchmarks.md && \
	echo "results: $(BENCH_OUT); tables: docs/benchmarks.md"; exit $$status

crds: venv
	$(BIN)/tailwire crds -o deploy/crds

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
