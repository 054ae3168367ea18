# Every target works from a fresh clone: .venv is created or refreshed as needed.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
ARGS ?=

# Prefer the newest CPython >= 3.11 that actually runs (pyenv shims exist for versions that are
# not activated, so each candidate is tried, not just looked up).
PYTHON_BASE := $(shell for c in python3.13 python3.12 $$(ls -d $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV) python3.11 python3; do \
	"$$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1 && { echo "$$c"; break; }; done)

.PHONY: demo run test bench screenshot clean

$(VENV)/.stamp: pyproject.toml
	@test -n "$(PYTHON_BASE)" || { echo "error: no Python >= 3.11 found" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON_BASE) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

demo: $(VENV)/.stamp
	$(VENV)/bin/trading-agent demo $(ARGS)

run: $(VENV)/.stamp
	$(VENV)/bin/trading-agent --config config.json $(ARGS)

test: $(VENV)/.stamp
	$(VENV)/bin/lint-imports
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q $(ARGS)

bench: $(VENV)/.stamp
	$(PY) bench/replay.py
	$(PY) bench/strategy.py
	$(PY) bench/shadow.py
	QT_QPA_PLATFORM=offscreen $(PY) bench/chart.py
	QT_QPA_PLATFORM=offscreen $(PY) bench/window.py
	$(PY) bench/live_feed.py
	$(PY) bench/exchange_latency.py
	$(PY) bench/candle_to_order.py

screenshot: $(VENV)/.stamp
	bash tools/screenshot.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
