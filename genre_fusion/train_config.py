"""Training settings and the run directory they describe.

A run directory holds:

| path                 | written by                   | content                                        |
|----------------------|------------------------------|------------------------------------------------|
| `.genre_fusion.json` | start of training            | the entries the project wrote here             |
|                      |                              | (`genre_fusion.owned_outputs`, kind ``run``)   |
| `config.json`        | start of training            | `TrainConfig`, with the shards' genres, label  |
|                      |                              | mode and `FeatureConfig`                       |
| `model.keras`        | `ModelCheckpoint`            | the model of the best epoch by the run's       |
|                      |                              | monitor (`genre_fusion.recipe`)                |
| `history.csv`        | `CSVLogger`                  | one row per finished epoch (``epoch`` counts   |
|                      |                              | from 0)                                        |
| `logs/`              | `TensorBoard`                | training curves                                |
| `backup/`            | `BackupAndRestore`           | state of the last finished epoch, for          |
|                      |                              | resuming; removed when the run finishes        |
| `run.json`           | end of training              | ``{"finished": true, ...}``, the monitor and   |
|                      |                              | the best epoch's metrics; its presence marks a |
|                      |                              | finished run                                   |
| `evaluation/`,       | `genre_fusion.evaluate`      | metrics and plots per split; training curves   |
| `training_curves.png`|                              |                                                |

`config.json` alone is enough to rebuild the model and to read the shards it was trained on:
`TrainConfig.load(run_dir)`, then `check_shards(meta)` before using other shards.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from genre_fusion.atomic_files import TEMPORARY_SUFFIX, write_atomically
from genre_fusion.features import FeatureConfig
from genre_fusion.model import ModelConfig, SettingError, check_flag, check_integer
from genre_fusion.shards import LABEL_MODES, ShardsMeta

CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
LOGS_DIR = "logs"
BACKUP_DIR = "backup"
RUN_FILE = "run.json"
RUN_ARTIFACTS = (CONFIG_FILE, MODEL_FILE, HISTORY_FILE, LOGS_DIR, BACKUP_DIR, RUN_FILE)
RUN_KIND = "run"  # the kind of a run directory's record of its entries (`owned_outputs`)
EVALUATION_DIR = "evaluation"
TRAINING_CURVES_FILE = "training_curves.png"
# Folder of a multi-worker run where the non-chief workers keep their own logs and backups.
WORKERS_DIR = "workers"
# What training writes, the files it renames into place included.
RENAMED_INTO_PLACE = (CONFIG_FILE, HISTORY_FILE, RUN_FILE)
TRAINING_OUTPUTS = (*RUN_ARTIFACTS, *(name + TEMPORARY_SUFFIX for name in RENAMED_INTO_PLACE))
# What a run directory made before `owned_outputs` existed may hold: a run whose config.json loads
# as a `TrainConfig` owns these.
LEGACY_RUN_ENTRIES = (*TRAINING_OUTPUTS, WORKERS_DIR, EVALUATION_DIR, TRAINING_CURVES_FILE)
SEED_LIMIT = 2**32 - 1  # NumPy's and TensorFlow's largest seed


class RunError(ValueError):
    """A run directory that cannot be used as asked; the message names the problem and the fix."""


@dataclass
class TrainConfig:
    """Everything that decides a training run. `genres`, `label_mode` and `features` describe the
    shards it trains on (`with_shards` fills them in from meta.json)."""

    data: str
    run: str
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 15
    batch_size: int = 16  # global: split over the replicas with --distribute
    seed: int = 0
    class_weights: bool = False
    patience: int = 5  # epochs without a better validation loss before stopping
    distribute: bool = False
    mixed_precision: bool = False
    deterministic: bool = True  # TF op determinism: same seed, same numbers (some speed lost)
    genres: tuple[str, ...] = ()
    label_mode: str = "single"
    features: FeatureConfig = field(default_factory=FeatureConfig)

    def __post_init__(self):
        """Raises `SettingError` naming the field of a value of the wrong type or range."""
        self.genres = tuple(self.genres)
        for name in ("epochs", "batch_size", "patience"):
            check_integer(name, getattr(self, name), 1)
        check_integer("seed", self.seed, 0, SEED_LIMIT)
        for name in ("class_weights", "distribute", "mixed_precision", "deterministic"):
            check_flag(name, getattr(self, name))
        if self.label_mode not in LABEL_MODES:
            raise SettingError(
                "label_mode", f"must be one of {', '.join(LABEL_MODES)}, got {self.label_mode!r}"
            )

    def with_shards(self, meta: ShardsMeta) -> TrainConfig:
        """This config for the shards described by `meta`."""
        return replace(self, genres=meta.genres, label_mode=meta.label_mode, features=meta.features)

    def check_shards(self, meta: ShardsMeta, shards_dir: str | Path) -> None:
        """Raise `RunError` unless the shards in `shards_dir` (described by `meta`) have this run's
        genre vocabulary, label mode and features, so that the model's outputs mean the same."""
        differences = [
            f"{name}: the run has {ours}, the shards have {theirs}"
            for name, ours, theirs in (
                ("genres", list(self.genres), list(meta.genres)),
                ("label mode", self.label_mode, meta.label_mode),
                ("features", self.features.to_dict(), meta.features.to_dict()),
            )
            if ours != theirs
        ]
        if differences:
            raise RunError(
                f"run {self.run} does not match shards {shards_dir}: "
                + "; ".join(differences)
                + f". Use the shards the run was trained on ({self.data}), or build shards with the "
                "same settings, or train a new run on these shards"
            )

    def to_dict(self) -> dict:
        values = asdict(self)
        values["model"] = self.model.to_dict()
        values["genres"] = list(self.genres)
        values["features"] = self.features.to_dict()
        return values

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; known: {sorted(known)}")
        values = dict(values)
        values["model"] = ModelConfig.from_dict(values.get("model", {}))
        values["features"] = FeatureConfig.from_dict(values.get("features", {}))
        return cls(**values)

    def save(self, run_dir: str | Path) -> Path:
        """Write RUN_DIR/config.json (atomically); returns its path."""
        path = Path(run_dir) / CONFIG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, run_dir: str | Path) -> TrainConfig:
        """Read RUN_DIR/config.json; `RunError` when it is missing or is not a training run's."""
        path = Path(run_dir) / CONFIG_FILE
        if not path.is_file():
            raise RunError(
                f"{path} is missing: {run_dir} is not a run directory of `python -m genre_fusion.train`"
            )
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(values, dict):
                raise ValueError("not a JSON object")
            return cls.from_dict(values)
        except (ValueError, TypeError) as error:  # JSONDecodeError and SettingError are ValueErrors
            raise RunError(
                f"{path} is not the config.json of a `python -m genre_fusion.train` run ({error}): "
                f"{run_dir} is not a run directory"
            ) from None


def read_run_summary(run_dir: str | Path) -> dict | None:
    """RUN_DIR/run.json of a finished run, or None while the run is unfinished."""
    path = Path(run_dir) / RUN_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
