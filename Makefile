# CHUNGUS: `make run` starts the whole CPU stack; `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
OUT := var

.PHONY: install build run test lint bench clean soak fuzz audit

install:
	@./scripts/install.sh
	@./scripts/fetch_helm.sh || echo "install: no helm binary; the Helm chart tests will skip"

$(OUT)/registry.toml: install
	$(PY) -m build_engines stack --out $(OUT)

build: $(OUT)/registry.toml

run: install
	@$(PY) -m build_engines stack --out $(OUT)
	@$(VENV)/bin/chungus serve

test: install
	$(VENV)/bin/ruff check gateway build_engines tests bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(PY) -m pytest -m "" $(PYTEST_ARGS)

# Ten minutes at 64 concurrent streams through `chungus serve` (its own loopback stack); numbers
# in docs/reliability.md. tests/e2e/test_soak.py runs one minute of it.
soak: install
	$(PY) -m bench.soak --minutes 10 --concurrency 64 --out $(OUT)/bench/soak.json

# The benchmark suite against peers (docs/benchmarks.md): tables, JSON under var/bench/, plots in
# docs/bench/. Peers get their own venvs under var/bench/ on first use. bench-quick: seconds-long
# versions of each (tests/e2e/test_bench.py runs them), files under var/bench/quick/.
.PHONY: bench-quick
bench: install
	$(PY) -m bench.suite $(BENCH_ARGS)

bench-quick: install
	$(PY) -m bench.suite --quick $(BENCH_ARGS)

# Every route of /openapi.json fuzzed by schemathesis against a real server over the fake backend,
# with fresh randomness and many more examples than the CI run of tests/integration/test_fuzz.py.
FUZZ_EXAMPLES ?= 300
fuzz: install
	CHUNGUS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) CHUNGUS_FUZZ_RANDOM=1 $(PY) -m pytest -m "" \
		tests/integration/test_fuzz.py -p no:cacheprovider --timeout 3600 -q $(PYTEST_ARGS)

# Known vulnerabilities in the installed .venv (pip-audit). --strict fails when a package could not
# be checked, so an unreachable advisory service never reads as "no known vulnerabilities".
audit: install
	$(VENV)/bin/pip-audit --local --skip-editable --strict --progress-spinner off

lint: install
	$(VENV)/bin/ruff check gateway build_engines tests bench

# Mutation testing of the core modules against their fast unit tests (docs/testing.md).
# mutation: a fresh pass over every module, then the per-module scores (fails under 80%).
# mutation-quick MODULE=gateway.triton.stops: one module, reusing what mutants/ already knows.
MUTMUT := $(VENV)/bin/mutmut
MUTATION_JOBS ?= 2
.PHONY: mutation mutation-quick

mutation:
	rm -rf mutants
	mkdir -p $(OUT)
	$(MUTMUT) run --max-children $(MUTATION_JOBS) > $(OUT)/mutmut.log 2>&1 || (tail -c 2000 $(OUT)/mutmut.log; exit 1)
	$(PY) scripts/mutation_scores.py

mutation-quick:
	@test -n "$(MODULE)" || (echo "usage: make mutation-quick MODULE=gateway.triton.stops"; exit 2)
	mkdir -p $(OUT)
	$(MUTMUT) run --max-children $(MUTATION_JOBS) "$(MODULE).*" > $(OUT)/mutmut.log 2>&1 || (tail -c 2000 $(OUT)/mutmut.log; exit 1)
	$(MUTMUT) results | grep -F "$(MODULE)." || echo "$(MODULE): no surviving mutants"
	$(PY) scripts/mutation_scores.py $(MODULE)

clean:
	rm -rf $(OUT)
