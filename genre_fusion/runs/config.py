"""`TrainConfig`: the settings of a training run, saved as its config.json.

`config.json` alone is enough to rebuild the model and to read the shards it was trained on:
`TrainConfig.load(run_dir)`, then `check_shards(meta)` before using other shards.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from genre_fusion.data.shards import LABEL_MODES, ShardsMeta
from genre_fusion.features.config import FeatureConfig
from genre_fusion.files.atomic import write_atomically
from genre_fusion.model.config import ModelConfig, SettingError, check_flag, check_integer
from genre_fusion.runs.layout import CONFIG_FILE

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
