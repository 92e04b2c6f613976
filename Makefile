# mobility-insights — the front door. `make demo` and `make test` set everything up first.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
PYTHON := $(abspath $(VENV))/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt constraints.txt | cksum | cut -d' ' -f1)
DEMO_DATE ?= 2026-10-05
DEMO_CONF ?= conf/local.yaml
DEMO_MODE ?= k
export PYSPARK_PYTHON := $(PYTHON)
export PYTHONPATH := $(CURDIR)

.PHONY: setup jars browser test test-unit demo lint clean package bench

setup: $(STAMP) jars

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found (Python 3.11 is required)" >&2; exit 1; }
	@command -v java >/dev/null || { echo "error: java not found (Java 17 is required)" >&2; exit 1; }
	@test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -r requirements-dev.txt -c constraints.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

# Copies the Delta jars once into jars/ with Maven (quiet); jobs pass them via spark.jars.
# Without mvn it falls back to warming Spark's Ivy cache (spark.jars.packages).
jars: $(STAMP)
	@$(PYTHON) -m mobility.jars

# Chromium from the distribution's packages (browser tests of the portal and the map report).
browser:
	@bash scripts/install_chromium.sh

# The tests run in TEST_WORKERS processes (pytest-xdist), one test file per process at a time,
# so that a file's module-scoped fixtures (a pipeline run, say) are built once. One process
# kept 2 cores 76 % busy: the driver's work between Spark jobs is one thread. Each process
# starts its own local[2] Spark session (2 GB heap). TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
PYTEST_PARALLEL := -n $(TEST_WORKERS) --dist loadfile

# The three installs are independent (two virtualenvs, a distribution package): run them
# side by side; the Airflow virtualenv is the one tests/test_dag.py would otherwise build.
test:
	@$(MAKE) --no-print-directory -j3 setup browser airflow-venv
	$(PYTHON) -m pytest -q $(PYTEST_PARALLEL) --durations=20

# The fast inner loop: no end-to-end runs, no cluster, no Airflow virtualenv.
test-unit: setup
	$(PYTHON) -m pytest -q $(PYTEST_PARALLEL) -m "not e2e and not airflow"

lint: setup
	$(VENV)/bin/ruff check .

demo: setup
	@DEMO_MODE=$(DEMO_MODE) bash scripts/demo.sh $(DEMO_CONF) $(DEMO_DATE)

clean:
	rm -rf lake reports build dist .pytest_cache spark-warehouse metastore_db derby.log

# --- Cluster deployment -----------------------------------------------------------
# `make package`: dist/mobility_insights.zip (--py-files) and dist/env.tar.gz (--archives).
package: setup
	@bash scripts/package.sh

# Airflow 3 in its own virtualenv (its pins clash with ours); tests/test_dag.py runs this.
AIRFLOW_VENV := .airflow-venv
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed-$(shell cat requirements-airflow.txt constraints-airflow.txt | cksum | cut -d' ' -f1)

.PHONY: airflow-venv
airflow-venv: $(AIRFLOW_STAMP)

$(AIRFLOW_STAMP): requirements-airflow.txt constraints-airflow.txt
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found (Python 3.11 is required)" >&2; exit 1; }
	@test -x $(AIRFLOW_VENV)/bin/python || $(PY) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install -q --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install -q -r requirements-airflow.txt -c constraints-airflow.txt
	@rm -f $(AIRFLOW_VENV)/.installed-*
	@touch $@

# Benchmarks (benchmarks/README.md): floor vs pipeline vs naive, then a scaling run at
# BENCH_SCALE x N. The lake is generated once per (N, seed) and cached in bench-data/.
N ?= 20000000
BENCH_SEED ?= 42
BENCH_REPEATS ?= 3
BENCH_SCALE ?= 4
BENCH_SCALE_REPEATS ?= 3
BENCH_WARMUP ?=
bench: setup
	$(PYTHON) -m benchmarks.run --n $(N) --seed $(BENCH_SEED) --repeats $(BENCH_REPEATS) \
		--scale $(BENCH_SCALE) --scale-repeats $(BENCH_SCALE_REPEATS) \
		$(if $(BENCH_WARMUP),--warmup $(BENCH_WARMUP))

# The self-service privacy portal (README, "Privacy portal"): 127.0.0.1, codes in the local
# outbox. `make portal PORTAL_CONF=... PORTAL_ARGS="--set portal.port=8080"`.
PORTAL_CONF ?= conf/local.yaml
.PHONY: portal
portal: setup
	@bash scripts/portal.sh $(PORTAL_CONF)
