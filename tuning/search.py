"""Running, or resuming, an architecture search with Keras Tuner over the shards' train/val splits.

The output folder holds:

| path           | content                                                                   |
|----------------|---------------------------------------------------------------------------|
| `search.json`  | the settings the search was started with (a rerun must match them)        |
| `trials/`      | Keras Tuner's project: `oracle.json`, one `trial_N/` per trial            |

(`tuning.report` adds `best_hparams.json`, `leaderboard.csv` and `objective.png`.)

Rerunning with the same settings continues the search: finished trials are kept, an interrupted
one is run again, and new trials are drawn until `max_trials` (which may be raised) is reached.

Keras Tuner catches every exception of a trial, marks the trial FAILED and goes on; it raises only
after `MAX_CONSECUTIVE_FAILED_TRIALS` failures in a row. Both ends are turned into a `SearchError`
naming the first trial's error when no trial has finished; partial failures are in the result.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import keras_tuner as kt
import tensorflow as tf
from keras_tuner.engine.trial import Trial, TrialStatus

from genre_fusion.dataset import make_dataset
from genre_fusion.model import MODALITIES, ModelConfig
from genre_fusion.shards import ShardsMeta, read_meta
from genre_fusion.train_config import TrainConfig
from tuning.hypermodel import GenreHyperModel
from tuning.objective import search_objective
from tuning.space import SearchSpace

TUNERS = ("hyperband", "bayesian", "random")
PROJECT_NAME = "trials"
SETTINGS_FILE = "search.json"
# Settings a rerun may change: a moved shards folder (its meta.json is compared instead), more trials.
CHANGEABLE_SETTINGS = ("data", "max_trials")
EARLY_STOPPING_PATIENCE = 3  # epochs without a better objective before a trial stops
MAX_CONSECUTIVE_FAILED_TRIALS = 3  # a systematic error stops the search after this many trials
HYPERBAND_FACTOR = 3


class SearchError(RuntimeError):
    """No trial of the search finished; `result` holds every trial, with its error."""

    def __init__(self, message: str, result: SearchResult):
        super().__init__(message)
        self.result = result


class SearchSettingsError(ValueError):
    """The output folder holds a search with other settings; the message names them and the fix."""


@dataclass
class SearchSettings:
    """Every setting of a search (`python -m tuning`'s options)."""

    data: str
    out: str
    tuner: str = "hyperband"
    max_trials: int = 20  # Hyperband too: its brackets are cut off after this many trials
    epochs: int = TrainConfig.epochs  # per trial at most (Hyperband: the trials of its last round)
    batch_size: int = TrainConfig.batch_size
    seed: int = 0
    modalities: tuple[str, ...] = MODALITIES
    overwrite: bool = False
    space: SearchSpace = field(default_factory=SearchSpace)

    def __post_init__(self):
        if self.tuner not in TUNERS:
            raise ValueError(f"tuner must be one of {', '.join(TUNERS)}, got {self.tuner!r}")
        for name in ("max_trials", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        # ModelConfig accepts "audio,lyrics" too, and names the valid modalities when one is wrong.
        self.modalities = ModelConfig(modalities=self.modalities).modalities

    def to_dict(self) -> dict:
        """JSON-ready, as search.json records them: all but `out` and `overwrite`."""
        return {
            "data": str(self.data),
            "tuner": self.tuner,
            "max_trials": self.max_trials,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "modalities": list(self.modalities),
            "space": self.space.to_dict(),
        }


@dataclass(frozen=True)
class TrialResult:
    """One trial, as the leaderboard shows it.

    `values`: its hyperparameters (ModelConfig field names; Hyperband adds ``tuner/...`` entries);
    `objective`: its best validation objective (None unless COMPLETED), reached at `best_epoch`
    (1-based); `error`: the traceback of a failed trial.
    """

    trial_id: str
    status: str
    values: dict
    objective: float | None
    best_epoch: int | None
    error: str | None

    @property
    def error_line(self) -> str:
        """The last line of the error (exception type and message), "" without an error."""
        return self.error.strip().splitlines()[-1] if self.error else ""


@dataclass(frozen=True)
class SearchResult:
    """What a search (all its runs together) found.

    `trials`: in the order they started. `best_trial` and its `best_config`: None if no trial
    finished. `new_trials`: trials started by this run. `seconds`: this run's duration.
    """

    settings: SearchSettings
    objective: str
    trials: list[TrialResult]
    best_trial: TrialResult | None
    best_config: ModelConfig | None
    new_trials: int
    seconds: float

    @property
    def failed(self) -> list[TrialResult]:
        return [trial for trial in self.trials if trial.status != TrialStatus.COMPLETED]


def _prepare_out(settings: SearchSettings, meta: ShardsMeta, outputs: tuple[str, ...]) -> dict:
    """Checks that `settings.out` holds no search with other settings, or clears it with
    `overwrite`. `outputs`: file names the reports write there. Returns search.json's content."""
    out = Path(settings.out)
    path = out / SETTINGS_FILE
    current = json.loads(json.dumps({**settings.to_dict(), "shards": meta.to_dict()}))
    if settings.overwrite:
        # Only what a search writes: --out may be a folder holding other things too.
        shutil.rmtree(out / PROJECT_NAME, ignore_errors=True)
        for name in (SETTINGS_FILE, *outputs):
            (out / name).unlink(missing_ok=True)
    elif path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(
            name
            for name in set(previous) | set(current)
            if name not in CHANGEABLE_SETTINGS and previous.get(name) != current.get(name)
        )
        if changed:
            raise SearchSettingsError(
                f"{out} holds a search with other settings ({', '.join(changed)} differ; see {path}): "
                "rerun with the same settings to continue it, or pass --overwrite to start over, "
                "or choose another --out"
            )
    return current


def _make_tuner(settings: SearchSettings, hypermodel: kt.HyperModel, objective: kt.Objective) -> kt.Tuner:
    common = {
        "hypermodel": hypermodel,
        "objective": objective,
        "seed": settings.seed,
        "max_consecutive_failed_trials": MAX_CONSECUTIVE_FAILED_TRIALS,
        "directory": settings.out,
        "project_name": PROJECT_NAME,
        # False reloads the project when it exists; _prepare_out has already cleared it on --overwrite.
        "overwrite": False,
    }
    if settings.tuner == "hyperband":
        tuner = kt.Hyperband(max_epochs=settings.epochs, factor=HYPERBAND_FACTOR, **common)
        # HyperbandOracle takes no max_trials argument, but Oracle.create_trial honours the attribute.
        tuner.oracle.max_trials = settings.max_trials
        return tuner
    if settings.tuner == "bayesian":
        return kt.BayesianOptimization(max_trials=settings.max_trials, **common)
    return kt.RandomSearch(max_trials=settings.max_trials, **common)


def _stopped_by_failures(oracle: kt.Oracle) -> bool:
    """Whether the last trials that ended were MAX_CONSECUTIVE_FAILED_TRIALS failures (Keras Tuner's
    reason to raise RuntimeError from `search`)."""
    last = oracle.end_order[-MAX_CONSECUTIVE_FAILED_TRIALS:]
    return len(last) == MAX_CONSECUTIVE_FAILED_TRIALS and all(
        oracle.trials[trial_id].status == TrialStatus.FAILED for trial_id in last
    )


def _trial_result(trial: Trial) -> TrialResult:
    completed = trial.status == TrialStatus.COMPLETED
    return TrialResult(
        trial_id=trial.trial_id,
        status=trial.status,
        values=dict(trial.hyperparameters.values),
        objective=float(trial.score) if completed else None,
        # Keras Tuner counts steps (epochs) from 0, Keras prints them from 1.
        best_epoch=trial.best_step + 1 if completed else None,
        error=trial.message,
    )


def run_search(settings: SearchSettings, outputs: tuple[str, ...] = ()) -> SearchResult:
    """Runs (or resumes) the search described by `settings`.

    Args:
        settings: the search.
        outputs: names of files the caller writes into `settings.out` from the result; removed
            with `overwrite`, so that no report of an earlier search outlives it.

    Returns:
        The trials so far, with the best config. Partial failures are in `result.failed`.

    Raises:
        ShardsError: the shards are missing or unreadable.
        SearchSettingsError: `settings.out` holds a search with other settings.
        ValueError: the shards' mel bins are too few for the search space.
        SearchError: no trial finished (the message holds the first failed trial's traceback).
    """
    started = time.perf_counter()
    meta = read_meta(settings.data)
    recorded = _prepare_out(settings, meta, outputs)
    keras.utils.set_random_seed(settings.seed)

    def split(name: str, training: bool) -> tf.data.Dataset:
        return make_dataset(
            settings.data,
            name,
            meta,
            settings.modalities,
            settings.batch_size,
            training=training,
            seed=settings.seed,
        )

    train, validation = split("train", training=True), split("val", training=False)
    # As `genre_fusion.train` adapts: the training split in file order, the same for every trial.
    adapt = split("train", training=False)
    objective = search_objective(meta)
    hypermodel = GenreHyperModel(meta, settings.modalities, settings.space, adapt)
    tuner = _make_tuner(settings, hypermodel, objective)
    # Once the tuner exists (it builds a model to learn the space), before any trial runs.
    (Path(settings.out) / SETTINGS_FILE).write_text(json.dumps(recorded, indent=2) + "\n", encoding="utf-8")
    trials_before = len(tuner.oracle.trials)
    early_stopping = keras.callbacks.EarlyStopping(
        monitor=objective.name, mode=objective.direction, patience=EARLY_STOPPING_PATIENCE
    )
    try:
        tuner.search(train, validation_data=validation, epochs=settings.epochs, callbacks=[early_stopping])
    except RuntimeError:
        if not _stopped_by_failures(tuner.oracle):
            raise

    oracle = tuner.oracle
    trials = [_trial_result(oracle.trials[trial_id]) for trial_id in oracle.start_order]
    best = [trial for trial in oracle.get_best_trials(1) if trial.status == TrialStatus.COMPLETED]
    result = SearchResult(
        settings=settings,
        objective=objective.name,
        trials=trials,
        best_trial=next(trial for trial in trials if trial.trial_id == best[0].trial_id) if best else None,
        best_config=settings.space.declare(
            best[0].hyperparameters, settings.modalities, meta.features.mel_bins
        )
        if best
        else None,
        new_trials=len(trials) - trials_before,
        seconds=time.perf_counter() - started,
    )
    if result.best_trial is None:
        failed = [trial for trial in trials if trial.error]
        stopped = (
            f" (stopped after {MAX_CONSECUTIVE_FAILED_TRIALS} in a row)"
            if _stopped_by_failures(oracle)
            else ""
        )
        raise SearchError(
            f"all {len(trials)} trials failed{stopped}; the error of the first, trial {failed[0].trial_id}:\n"
            f"{failed[0].error}"
            if failed
            else "the search ran no trial",
            result,
        )
    return result
