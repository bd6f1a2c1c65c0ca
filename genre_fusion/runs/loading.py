"""Reading a run directory: its summary, and its config and best model."""

from __future__ import annotations

import json
from pathlib import Path

import keras

from genre_fusion.model.builder import CUSTOM_LAYERS
from genre_fusion.runs.config import RunError, TrainConfig
from genre_fusion.runs.layout import MODEL_FILE, RUN_FILE


def read_run_summary(run_dir: str | Path) -> dict | None:
    """RUN_DIR/run.json of a finished run, or None while the run is unfinished."""
    path = Path(run_dir) / RUN_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def load_run(run_dir: str | Path, require_finished: bool = True) -> tuple[TrainConfig, keras.Model]:
    """The config and best model of a run; `RunError` naming the problem and the fix: not a run
    directory, no model yet or a damaged one, or with `require_finished` a run still training."""
    run_dir = Path(run_dir)
    config = TrainConfig.load(run_dir)
    model_path = run_dir / MODEL_FILE
    if require_finished and (read_run_summary(run_dir) is None or not model_path.is_file()):
        raise RunError(
            f"{run_dir} holds no finished model ({MODEL_FILE} and run.json are written when training "
            "ends): finish the run by rerunning its `python -m genre_fusion.train` command (it resumes)"
        )
    if not model_path.is_file():
        raise RunError(f"{model_path} is missing: train the run first (`python -m genre_fusion.train`)")
    try:
        model = keras.models.load_model(model_path, custom_objects=CUSTOM_LAYERS, compile=False)
    except (OSError, ValueError) as error:
        raise RunError(
            f"{model_path} cannot be loaded as a Keras model ({error}): it is damaged; train the run again"
        ) from error
    return config, model
