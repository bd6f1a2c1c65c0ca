PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO := demo
STAMP := $(VENV)/.installed
MUSICNN_VERSION := 0.1.0
# TensorFlow's C++ start-up notices are noise for a user.
TF_QUIET := TF_CPP_MIN_LOG_LEVEL=2

.PHONY: install test test-fast lint demo clean

# The venv is refreshed whenever one of the project's install files changes.
$(STAMP): requirements.txt requirements-dev.txt setup.py Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	# musicnn's weights only (its code pins numpy < 1.17 and is never imported by the project).
	$(PY) -m pip install --quiet --no-deps musicnn==$(MUSICNN_VERSION)
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

test: install
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(TF_QUIET) $(PY) -m pytest -q

# The unit tests alone, in under a minute: no shards built, no training, export, tuning or subprocess.
test-fast: install
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(TF_QUIET) $(PY) -m pytest -q -m "not e2e"

demo: install
	$(TF_QUIET) $(PY) -m data_prep synth --out $(DEMO)/music4all --faults
	$(TF_QUIET) $(PY) -m data_prep build --music4all $(DEMO)/music4all --out $(DEMO)/shards --clip-seconds 10
	$(TF_QUIET) $(PY) -m genre_fusion.train --data $(DEMO)/shards --run $(DEMO)/run --overwrite
	$(TF_QUIET) $(PY) -m genre_fusion.evaluate --run $(DEMO)/run
	$(TF_QUIET) $(PY) -m genre_fusion.export --run $(DEMO)/run --out $(DEMO)/model --overwrite
	song=$$(awk -F, '$$2 == "test" {print $$1; exit}' $(DEMO)/shards/splits.csv); \
	$(TF_QUIET) $(PY) -m genre_fusion.predict --model $(DEMO)/model \
		$(DEMO)/music4all/audios/$$song.mp3 --lyrics $(DEMO)/music4all/lyrics/$$song.txt
	@echo
	@echo "demo collection  $(DEMO)/music4all   (faults.csv: the songs broken on purpose)"
	@echo "shards           $(DEMO)/shards      (rejected.csv: what was skipped and why)"
	@echo "trained run      $(DEMO)/run         (model.keras, history.csv, logs/, training_curves.png)"
	@echo "evaluation       $(DEMO)/run/evaluation/test   (metrics.json, confusion_matrix.png, per_genre_f1.png)"
	@echo "SavedModel       $(DEMO)/model       (serve it: python -m genre_fusion.predict --model $(DEMO)/model SONG.mp3)"

clean:
	rm -rf $(DEMO) $(VENV)
