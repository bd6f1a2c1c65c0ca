"""Running, or resuming, an architecture search with Keras Tuner over the shards' train/val splits.

The output folder holds:

| path           | content                                                                   |
|----------------|---------------------------------------------------------------------------|
| `search.json`  | the settings the search was started with (a rerun must match them)        |
| `trials/`      | Keras Tuner's project: `oracle.json`, one `trial_N/` per trial            |

(`tuning.report` adds `best_hparams.json`, `leaderboard.csv` and `objective.png`.) The folder's
record of its entries (`genre_fusion.files.owned_outputs`, kind ``search``) lists them all, so that
``--overwrite`` removes only those, and refuses a folder that holds anything else.

Rerunning with the same settings continues the search: finished trials are kept, an interrupted
one is run again, and new trials are drawn until `max_trials` (which may be raised) is reached.

Keras Tuner catches every exception of a trial, marks the trial FAILED and goes on; it raises only
after `MAX_CONSECUTIVE_FAILED_TRIALS` failures in a row. Both ends are turned into a `SearchError`
naming the first trial's error when no trial has finished; partial failures are in the result.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import keras_tuner as kt

from genre_fusion.compat import Trial, TrialStatus, ended_trial_ids, set_max_trials, started_trial_ids
from genre_fusion.data.inputs import MODALITIES
from genre_fusion.data.pipeline import make_dataset
from genre_fusion.data.shards import ShardsMeta, read_meta
from genre_fusion.files.owned_outputs import clear_outputs, record_outputs
from genre_fusion.model.config import ModelConfig, SettingError, check_flag, check_integer, parse_modalities
from genre_fusion.runs.config import SEED_LIMIT, TrainConfig
from genre_fusion.training.recipe import op_determinism, training_statistics
from tuning.hypermodel import GenreHyperModel, TrialTraining
from tuning.space import SearchSpace, conv_mel_bins

TUNERS = ("hyperband", "bayesian", "random")
PROJECT_NAME = "trials"
SETTINGS_FILE = "search.json"
# Settings a rerun may change: a moved shards folder (its meta.json is compared instead), more trials.
CHANGEABLE_SETTINGS = ("data", "max_trials")
EARLY_STOPPING_PATIENCE = 3  # epochs without a better objective before a trial stops
MAX_CONSECUTIVE_FAILED_TRIALS = 3  # a systematic error stops the search after this many trials
HYPERBAND_FACTOR = 3
SEARCH_KIND = "search"  # the kind of the output folder's record of its entries (`owned_outputs`)


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
    class_weights: bool = False  # as `genre_fusion.train --class-weights`; selects by macro-F1
    patience: int = EARLY_STOPPING_PATIENCE
    overwrite: bool = False
    space: SearchSpace = field(default_factory=SearchSpace)

    def __post_init__(self):
        """Raises `SettingError` naming the field of a value of the wrong type or range."""
        if self.tuner not in TUNERS:
            raise SettingError("tuner", f"must be one of {', '.join(TUNERS)}, got {self.tuner!r}")
        for name in ("max_trials", "epochs", "batch_size", "patience"):
            check_integer(name, getattr(self, name), 1)
        check_integer("seed", self.seed, 0, SEED_LIMIT)
        for name in ("class_weights", "overwrite"):
            check_flag(name, getattr(self, name))
        self.modalities = parse_modalities(self.modalities)

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
            "class_weights": self.class_weights,
            "patience": self.patience,
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

    `objective`: the name of the number trials are ranked by, `direction` ("min" or "max")
    whether lower or higher is better. `trials`: in the order they started. `best_trial` and its
    `best_config`: None if no trial finished. `new_trials`: trials started by this run.
    `seconds`: this run's duration.
    """

    settings: SearchSettings
    objective: str
    direction: str
    trials: list[TrialResult]
    best_trial: TrialResult | None
    best_config: ModelConfig | None
    new_trials: int
    seconds: float

    @property
    def failed(self) -> list[TrialResult]:
        return [trial for trial in self.trials if trial.status != TrialStatus.COMPLETED]


def _prepare_out(
    settings: SearchSettings, meta: ShardsMeta, objective: kt.Objective, outputs: tuple[str, ...]
) -> dict:
    """Checks that `settings.out` holds no search with other settings (or objective), or clears it
    with `overwrite`. `outputs`: file names the reports write there. Returns search.json's content."""
    out = Path(settings.out)
    path = out / SETTINGS_FILE
    recorded = {**settings.to_dict(), "objective": objective.name, "shards": meta.to_dict()}
    current = json.loads(json.dumps(recorded))
    own = (SETTINGS_FILE, PROJECT_NAME, *outputs)
    # A search made before the record of its entries existed owns them when its search.json is one.
    legacy = own if _holds_search_settings(path) else ()
    if settings.overwrite:
        clear_outputs(out, SEARCH_KIND, legacy)
    elif path.is_file():
        if not _holds_search_settings(path):
            raise SearchSettingsError(f"{path} is not the settings of a search: choose another --out")
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
    record_outputs(out, SEARCH_KIND, own)  # before any of them is written
    return current


def _holds_search_settings(path: Path) -> bool:
    """Whether `path` is a search.json that a search wrote."""
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(values, dict) and {"tuner", "space", "shards"} <= set(values)


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
        set_max_trials(tuner, settings.max_trials)
        return tuner
    if settings.tuner == "bayesian":
        return kt.BayesianOptimization(max_trials=settings.max_trials, **common)
    return kt.RandomSearch(max_trials=settings.max_trials, **common)


def _stopped_by_failures(oracle: kt.Oracle) -> bool:
    """Whether the last trials that ended were MAX_CONSECUTIVE_FAILED_TRIALS failures (Keras Tuner's
    reason to raise RuntimeError from `search`)."""
    last = ended_trial_ids(oracle)[-MAX_CONSECUTIVE_FAILED_TRIALS:]
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
    keras.utils.set_random_seed(settings.seed)

    training = TrialTraining(
        data=settings.data,
        batch_size=settings.batch_size,
        seed=settings.seed,
        epochs=settings.epochs,
        patience=settings.patience,
        class_weights=settings.class_weights,
    )
    statistics = training_statistics(settings.data, meta, settings.batch_size)
    validation = make_dataset(
        settings.data, "val", meta, settings.modalities, settings.batch_size, training=False
    )
    hypermodel = GenreHyperModel(meta, settings.modalities, settings.space, statistics, validation, training)
    objective = kt.Objective(hypermodel.monitor.name, direction=hypermodel.monitor.mode)
    recorded = _prepare_out(settings, meta, objective, outputs)
    tuner = _make_tuner(settings, hypermodel, objective)
    # Once the tuner exists (it builds a model to learn the space), before any trial runs.
    (Path(settings.out) / SETTINGS_FILE).write_text(json.dumps(recorded, indent=2) + "\n", encoding="utf-8")
    trials_before = len(tuner.oracle.trials)
    try:
        # As training runs: a trial's numbers are those of `genre_fusion.train` with its settings.
        with op_determinism(True):
            tuner.search(epochs=settings.epochs)  # the hypermodel brings its data and callbacks
    except RuntimeError:
        if not _stopped_by_failures(tuner.oracle):
            raise

    oracle = tuner.oracle
    trials = [_trial_result(oracle.trials[trial_id]) for trial_id in started_trial_ids(oracle)]
    best = [trial for trial in oracle.get_best_trials(1) if trial.status == TrialStatus.COMPLETED]
    result = SearchResult(
        settings=settings,
        objective=objective.name,
        direction=objective.direction,
        trials=trials,
        best_trial=next(trial for trial in trials if trial.trial_id == best[0].trial_id) if best else None,
        best_config=settings.space.declare(
            best[0].hyperparameters, settings.modalities, conv_mel_bins(meta.features)
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
