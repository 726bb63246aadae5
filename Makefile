# Gongyun: two commands from nothing but Python 3.11 and make.
#   make run   - create .venv, install, initialise ./var, serve on http://127.0.0.1:8000 and http://[::1]:8000
#   make test  - create .venv with the test extras and run the whole suite

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?=
PORT   ?= 8000
PYTEST_ARGS ?=

.PHONY: run test lint lint-imports typecheck check clean bench-resolve bench-registry bench-edge bench-ingest bench-query bench-idseal soak bench-schedule

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	$(BIN)/pip install --quiet --no-deps -r src/gongyun/apps/scheduling/ortools-requirements.txt
	touch $@

$(VENV)/.installed-dev: pyproject.toml tests/sparkplug/interop-requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps -r tests/sparkplug/interop-requirements.txt
	$(BIN)/pip install --quiet --no-deps -r src/gongyun/apps/scheduling/ortools-requirements.txt -r bench/schedule-requirements.txt
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/gongyun serve $(if $(HOST),--host $(HOST)) --port $(PORT)

test: $(VENV)/.installed-dev tests/js/node_modules/.package-lock.json
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# JavaScript libraries the tests check against (digital-link.js, epcis2.js): npm ci from the lock
# file; without Node.js the tests that need them skip.
tests/js/node_modules/.package-lock.json: tests/js/package.json tests/js/package-lock.json
	if command -v npm >/dev/null; then cd tests/js && npm ci --no-audit --no-fund --loglevel=error; fi

lint: lint-imports
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

# The layers of docs/architecture.md as import-linter contracts (pyproject.toml): fails on a cycle
# or an import that runs back up a floor.
lint-imports: $(VENV)/.installed-dev
	$(BIN)/lint-imports --no-cache

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

check: lint typecheck test

# Explicit rules: make applies no pattern rule to a .PHONY target.
BENCHES := resolve registry edge ingest query idseal
$(addprefix bench-,$(BENCHES)): bench-%: $(VENV)/.installed-dev
	$(BIN)/python bench/$*.py $(BENCH_ARGS)

# The load and soak harness (bench/soak.py): two API processes on its own PostgreSQL, NATS and
# Mosquitto, each crashed in turn; not part of `make test`. e.g. make soak SOAK_ARGS="--duration 7200"
SOAK_ARGS ?=
soak: $(VENV)/.installed-dev
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

# Scheduling: Gongyun's search beside plain CP-SAT on ft/la/ta and Brandimarte (about 1.5 hours, 2.8 at most, at
# the default 60 s per instance). e.g. make bench-schedule SCHEDULE_ARGS="--time-limit 10 --only ta0*,mk0?"
# or one summary group: make bench-schedule SCHEDULE_ARGS="--groups ta11-20 --time-limit 60"
# or the full run in parts (same solver code): SCHEDULE_ARGS="--groups ft/la --resume", then "--resume"
SCHEDULE_ARGS ?=
bench-schedule: $(VENV)/.installed-dev
	$(BIN)/pip install --quiet --no-deps -r bench/schedule-requirements.txt
	$(BIN)/python bench/schedule.py $(SCHEDULE_ARGS)

# Two Gongyun deployments with enterprise nodes, a secondary, a root and a recursive resolver
# (docs/apps/trace.md): about a minute, so not part of `make test`.
test-trace-enterprises: $(VENV)/.installed-dev
	GONGYUN_TRACE_ENTERPRISES=1 $(BIN)/python -m pytest -q tests/integration/test_trace_enterprises.py

# make bench-trace BENCH_ARGS="--links 100000" while developing; the default builds 10 M links.
bench-trace: $(VENV)/.installed-dev
	$(BIN)/python bench/trace.py $(BENCH_ARGS)

# `gongyun demo` with the trace app in headless Chromium, both languages (about two minutes;
# screenshots in the test's tmp directory).
test-trace-browser: $(VENV)/.installed-dev
	GONGYUN_TRACE_BROWSER=1 $(BIN)/python -m pytest -q tests/browser/test_trace.py

.PHONY: test-trace-enterprises test-trace-browser bench-trace

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# Quality and OEE apps: all run rules over 1 M subgroups beside plain NumPy (bench/spc.py); a month
# of OEE at 1 Hz for 100 machines from the store beside hand-written SQL, on DuckDB and PostgreSQL
# (bench/oee.py). Small first: make bench-oee BENCH_ARGS="--machines 5 --days 2"
.PHONY: bench-spc bench-oee
bench-spc bench-oee: bench-%: $(VENV)/.installed-dev
	$(BIN)/python bench/$*.py $(BENCH_ARGS)

# The maintenance app's benchmarks (docs/apps/maintenance.md): RUL on C-MAPSS FD001 (5-fold CV by
# engine) and anomaly detection on SKAB valve1+valve2, each beside its baseline; JSON in var/.
.PHONY: bench-rul bench-anomaly
bench-rul bench-anomaly: bench-%: $(VENV)/.installed-dev
	$(BIN)/python bench/$*.py $(BENCH_ARGS)

# The audit transparency log beside the old hash chain: 1 M appends, proof sizes and times.
.PHONY: bench-audit
bench-audit: $(VENV)/.installed-dev
	$(BIN)/python bench/audit.py $(BENCH_ARGS)

# The IDS: a >= 1 M packet capture of the demo's Modbus traffic decoded beside tshark, and the live
# sensor's packets/s on loopback before it drops any (docs/security-ids.md). BENCH_ARGS=--packets N.
.PHONY: bench-ids
bench-ids: $(VENV)/.installed-dev
	$(BIN)/python bench/ids.py $(BENCH_ARGS)

# The quality and OEE apps with `gongyun demo` in a real browser, and their console forms (about
# 2 min; not in `make test`).
.PHONY: test-demo-apps
test-demo-apps: $(VENV)/.installed-dev
	GONGYUN_DEMO_APPS=1 $(BIN)/python -m pytest tests/browser/test_demo_quality_oee.py tests/browser/test_quality_oee_forms.py $(PYTEST_ARGS)

# The maintenance app on `gongyun demo`'s pump in a real browser: bearing wear to a closed work order,
# the RUL error printed, screenshots in both languages (about fifteen minutes; not in `make test`).
.PHONY: test-demo-maintenance
test-demo-maintenance: $(VENV)/.installed-dev
	GONGYUN_DEMO_MAINTENANCE=1 $(BIN)/python -m pytest -s tests/browser/test_demo_maintenance.py $(PYTEST_ARGS)

# Security scan (run by .ci/run): bandit over src fails on any high-severity finding; pip-audit of
# the installed dependencies runs against PyPI's JSON API or OSV, whichever answers from here, and
# says plainly when neither does (PIP_AUDIT_REQUIRED=1 makes that fail). docs/security.md lists the
# medium findings and why they stay.
.PHONY: security-scan security-lint security-audit
security-scan: security-lint security-audit
security-lint: $(VENV)/.installed-dev
	$(BIN)/bandit -q -r src -lll
security-audit: $(VENV)/.installed-dev
	.ci/pip-audit $(BIN)

# A cyber-range scenario against `gongyun demo`, watched on the Security page in headless Chromium
# (about a minute; not in `make test`). Screenshots in English and 简体中文 under pytest's tmp_path.
.PHONY: test-ids-browser
test-ids-browser: $(VENV)/.installed-dev
	GONGYUN_IDS_BROWSER=1 $(BIN)/python -m pytest tests/browser/test_ids_range.py $(PYTEST_ARGS)
