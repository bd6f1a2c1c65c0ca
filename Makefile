PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO := demo
STAMP := $(VENV)/.installed

.PHONY: install test lint demo clean

# The venv is refreshed whenever one of the project's install files changes.
$(STAMP): requirements.txt requirements-dev.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(PY) -m ruff check .

test: install
	$(PY) -m ruff check .
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest -q

demo: install
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m data_prep synth --out $(DEMO)/music4all --faults
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m data_prep build --music4all $(DEMO)/music4all --out $(DEMO)/shards --clip-seconds 10

clean:
	rm -rf $(DEMO) $(VENV)
