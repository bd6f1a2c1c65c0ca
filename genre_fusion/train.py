"""`python -m genre_fusion.train`: fit the genre model from feature shards into a run directory.

    python -m genre_fusion.train --data SHARDS --run RUN_DIR [--epochs N] [--batch-size B]
        [--modalities audio,lyrics] [--fusion concat|gated|attention] [--conv-blocks N] ...
        [--hparams best_hparams.json] [--class-weights] [--seed S] [--patience P]
        [--distribute] [--mixed-precision] [--overwrite]

Every `ModelConfig` field has a flag (``--lstm-units 64``); ``--hparams`` reads a JSON object of
such fields (the tuner's best_hparams.json) and explicit flags override it. The run directory's
layout is described in `genre_fusion.train_config`.

Training: Adam with a per-epoch cosine decay of the learning rate, categorical cross-entropy
(binary for multi-label shards), optional class weights from the training split's genre counts,
early stopping and the best checkpoint by validation loss, TensorBoard and CSV logs. A run that is
killed resumes from its last finished epoch when the same command runs again; a finished run is
kept unless ``--overwrite``. Bad input (missing or incompatible shards, an empty split, a finished
run, a run of other shards or settings) stops with a message and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from genre_fusion.dataset import make_dataset
from genre_fusion.model import FUSIONS, ModelConfig, build_model
from genre_fusion.shards import ShardsError, ShardsMeta, read_meta
from genre_fusion.train_config import (
    BACKUP_DIR,
    CONFIG_FILE,
    HISTORY_FILE,
    LOGS_DIR,
    MODEL_FILE,
    RUN_ARTIFACTS,
    RUN_FILE,
    RunError,
    TrainConfig,
    read_run_summary,
)

MONITOR = "val_loss"
# Keras' BackupAndRestore records there the epoch a restarted fit() begins with.
BACKUP_METADATA_FILE = "training_metadata.json"
# Folder of a multi-worker run where the non-chief workers keep their own logs and backups.
WORKERS_DIR = "workers"
MIXED_POLICY = "mixed_float16"


# ------------------------------------------------------------------------------------- command line


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m genre_fusion.train",
        description="Train the genre model from feature shards.",
        allow_abbrev=False,  # a misspelt flag must fail, not match a longer one
    )
    parser.add_argument("--data", required=True, help="shards directory of `python -m data_prep build`")
    parser.add_argument("--run", required=True, help="run directory to write (or to resume)")
    # Training flags default to None: only what is given overrides TrainConfig's defaults.
    defaults = TrainConfig(data="", run="")
    parser.add_argument("--epochs", type=int, help=f"most epochs (default {defaults.epochs})")
    parser.add_argument("--batch-size", type=int, help=f"global batch size (default {defaults.batch_size})")
    parser.add_argument("--seed", type=int, help=f"random seed (default {defaults.seed})")
    parser.add_argument(
        "--patience",
        type=int,
        help=f"epochs without a better validation loss before stopping (default {defaults.patience})",
    )
    parser.add_argument(
        "--class-weights",
        action="store_true",
        default=None,
        help="weight songs by the inverse frequency of their genre (single-label shards)",
    )
    parser.add_argument(
        "--distribute",
        action="store_true",
        default=None,
        help="MirroredStrategy over the local GPUs (or logical CPUs); MultiWorkerMirroredStrategy "
        "when TF_CONFIG is set",
    )
    parser.add_argument(
        "--mixed-precision", action="store_true", default=None, help="float16 compute on a GPU"
    )
    parser.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="TF op determinism: the same seed gives the same numbers (default on)",
    )
    parser.add_argument(
        "--hparams", type=Path, help="JSON object of model settings (tuning's best_hparams.json)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a run already in --run")

    model = parser.add_argument_group(
        "model (ModelConfig; default: the --hparams file, else the default shown)"
    )
    for item in fields(ModelConfig):
        default = getattr(ModelConfig(), item.name)
        if item.name == "modalities":
            model.add_argument(
                "--modalities", help=f"audio, lyrics or audio,lyrics (default {','.join(default)})"
            )
        else:
            model.add_argument(
                _flag(item.name),
                type=type(default),
                choices=FUSIONS if item.name == "fusion" else None,
                help=f"default {default}",
            )
    return parser


def _config(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then the --hparams file, then explicit flags."""
    model_values = {}
    if args.hparams:
        try:
            model_values = json.loads(args.hparams.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read --hparams {args.hparams}: {error}") from error
        if not isinstance(model_values, dict):
            raise ValueError(f"--hparams {args.hparams} must hold a JSON object of model settings")
    for item in fields(ModelConfig):
        if getattr(args, item.name) is not None:
            model_values[item.name] = getattr(args, item.name)
    training = {
        item.name: getattr(args, item.name)
        for item in fields(TrainConfig)
        if item.name not in ("data", "run", "model") and getattr(args, item.name, None) is not None
    }
    return TrainConfig(data=args.data, run=args.run, model=ModelConfig.from_dict(model_values), **training)


# ------------------------------------------------------------------------------------ run directory


def _output_dir(run_dir: Path, strategy: tf.distribute.Strategy) -> Path:
    """The chief writes the run directory; other workers of a multi-worker run keep their own
    checkpoints and logs in a folder of their own inside it, so that no file has two writers."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type or _is_chief(resolver):
        return run_dir
    return run_dir / WORKERS_DIR / f"{resolver.task_type}-{resolver.task_id}"


def _is_chief(resolver) -> bool:
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (
        not has_chief and resolver.task_type == "worker" and resolver.task_id == 0
    )


def _prepare_run_dir(config: TrainConfig, meta: ShardsMeta, run_dir: Path, overwrite: bool) -> None:
    """Refuse a finished run (unless `overwrite`), a run of other shards or settings, or a folder
    that is not a run directory; with `overwrite`, remove the old run's files."""
    if overwrite:
        for name in RUN_ARTIFACTS:
            path = run_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    if read_run_summary(run_dir) is not None:
        raise RunError(
            f"{run_dir} holds a finished run ({RUN_FILE}): choose another --run, or pass --overwrite "
            "to replace it"
        )
    if (run_dir / CONFIG_FILE).is_file():
        previous = TrainConfig.load(run_dir)
        try:
            previous.check_shards(meta, config.data)
        except RunError as error:
            raise RunError(f"{error} (another --run, or --overwrite to replace this run)") from None
        _check_same_settings(previous, config, run_dir)
    elif run_dir.is_dir() and any(path.name != WORKERS_DIR for path in run_dir.iterdir()):
        raise RunError(
            f"{run_dir} exists and is not a run directory (no {CONFIG_FILE}): choose a new or empty --run"
        )


def _check_same_settings(previous: TrainConfig, config: TrainConfig, run_dir: Path) -> None:
    """An interrupted run resumes only with the settings it started with (paths may move)."""
    old, new = previous.to_dict(), config.to_dict()
    changed = [
        f"{key} {old[key]} -> {new[key]}"
        for key in new
        if key not in ("data", "run") and old.get(key) != new[key]
    ]
    if changed:
        raise RunError(
            f"{run_dir} holds an unfinished run with other settings ({'; '.join(changed)}): rerun with "
            "the same options to resume it, or pass --overwrite to start over"
        )


@dataclass(frozen=True)
class _Progress:
    """Where an interrupted run stopped: the epoch its backup resumes with and the best
    validation loss so far (None: nothing to resume)."""

    start_epoch: int = 0
    best_epoch: int = -1
    best_loss: float | None = None


def _resume_progress(output_dir: Path) -> _Progress:
    """Read the backup's epoch and trim history.csv to the epochs the backup holds (a kill between
    the CSV row and the backup leaves one row too many)."""
    metadata = output_dir / BACKUP_DIR / BACKUP_METADATA_FILE
    try:
        start_epoch = json.loads(metadata.read_text())["epoch"] if metadata.is_file() else 0
    except (json.JSONDecodeError, KeyError) as error:
        raise RunError(
            f"the backup of the interrupted run in {output_dir} is damaged ({metadata}: {error}): "
            "pass --overwrite to start the run over"
        ) from error
    history_path = output_dir / HISTORY_FILE
    if not history_path.is_file():
        return _Progress(start_epoch)
    history = pd.read_csv(history_path)
    history = history[history["epoch"] < start_epoch]
    if history.empty:
        history_path.unlink()
        return _Progress(start_epoch)
    history.to_csv(history_path, index=False)
    best = history.loc[history[MONITOR].idxmin()]
    return _Progress(start_epoch, int(best["epoch"]), float(best[MONITOR]))


class _ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that carries on counting patience from an interrupted run's history."""

    def __init__(self, progress: _Progress, **kwargs):
        super().__init__(**kwargs)
        self.progress = progress

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.progress.best_loss is not None:
            self.best = self.progress.best_loss
            self.best_epoch = self.progress.best_epoch
            self.wait = self.progress.start_epoch - 1 - self.progress.best_epoch


# ----------------------------------------------------------------------------------------- training


def _strategy(config: TrainConfig) -> tf.distribute.Strategy:
    if not config.distribute:
        return tf.distribute.get_strategy()
    if "TF_CONFIG" in os.environ:
        return tf.distribute.MultiWorkerMirroredStrategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([device.name for device in devices])


def _use_mixed_precision(config: TrainConfig) -> bool:
    if not config.mixed_precision:
        return False
    if not tf.config.list_physical_devices("GPU"):
        warnings.warn("--mixed-precision needs a GPU: training in float32 on this CPU", stacklevel=2)
        return False
    return True


def _build_for_string_inputs(model: keras.Model, strategy: tf.distribute.Strategy, batch) -> None:
    """Work around Keras 3.15 for a model with string inputs (the learned encoder's words) under a
    multi-replica strategy: fit() and evaluate() first average a batch over the replicas to build
    the model (`_maybe_symbolic_build`), and there is no string addition (AddN), so they fail
    (keras-team/keras#21172). The model is built already; this builds its loss, metrics and
    optimizer from one local batch, as that step would, and skips the step."""
    with strategy.scope():
        model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda *args, **kwargs: None


def class_weights(meta: ShardsMeta) -> dict[int, float]:
    """Genre index -> weight, inversely proportional to the genre's training songs, 1 on average
    over the songs. Single-label shards only (Keras weighs a song by one class)."""
    if meta.label_mode != "single":
        raise RunError(
            "--class-weights works with single-label shards only (a multi-label song has several "
            "genres): train without it, or build single-label shards"
        )
    counts = np.asarray(meta.genre_counts.get("train", []), dtype=float)
    if counts.size != len(meta.genres):
        raise RunError(
            "meta.json has no per-genre song counts for --class-weights: rebuild the shards with "
            "`python -m data_prep build`"
        )
    present = counts > 0
    weights = np.ones_like(counts)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return {index: float(weight) for index, weight in enumerate(weights)}


def _cosine_schedule(learning_rate: float, epochs: int):
    """Per-epoch cosine decay: a function of the epoch alone, so a resumed run continues it."""

    def schedule(epoch: int, current: float) -> float:
        return learning_rate * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))

    return schedule


def train(config: TrainConfig, meta: ShardsMeta, overwrite: bool = False) -> dict:
    """Fit (or resume) the run of `config` on the shards of `meta`; returns run.json's content.

    Raises `ShardsError` / `RunError` for bad input, before any training."""
    strategy = _strategy(config)  # first: a multi-worker strategy must exist before other TF work
    # Before any dataset: a shuffle's seed pairs with the global seed of the moment it is made.
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    modalities = config.model.modalities
    train_data = make_dataset(
        config.data, "train", meta, modalities, config.batch_size, training=True, seed=config.seed
    )
    val_data = make_dataset(config.data, "val", meta, modalities, config.batch_size, training=False)
    adapt_data = make_dataset(config.data, "train", meta, modalities, config.batch_size, training=False)
    weights = class_weights(meta) if config.class_weights else None
    # Last of the checks, as --overwrite removes the old run: bad shards must not cost it.
    output_dir = _output_dir(Path(config.run), strategy)
    _prepare_run_dir(config, meta, output_dir, overwrite)

    if strategy.num_replicas_in_sync > 1 or "TF_CONFIG" in os.environ:
        # Every worker reads every file and keeps its share of the songs: works for any shard count.
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        train_data, val_data = train_data.with_options(options), val_data.with_options(options)

    mixed = _use_mixed_precision(config)
    previous_policy = keras.mixed_precision.dtype_policy()
    if mixed:
        keras.mixed_precision.set_dtype_policy(MIXED_POLICY)
    try:
        with strategy.scope():
            model = build_model(config.model, meta, adapt_data)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)
    if strategy.num_replicas_in_sync > 1 and any(value.dtype == "string" for value in model.inputs):
        _build_for_string_inputs(model, strategy, next(iter(train_data)))
    config.save(output_dir)

    progress = _resume_progress(output_dir)
    replicas = strategy.num_replicas_in_sync
    print(
        f"training {model.name} ({model.count_params():,} parameters) on {meta.split_sizes['train']} songs "
        f"of {len(meta.genres)} genres, {'mixed float16' if mixed else 'float32'}"
        + (f", {replicas} replica(s) ({type(strategy).__name__})" if config.distribute else "")
        + f" -> {output_dir}"
        + (f"; resuming at epoch {progress.start_epoch + 1}" if progress.start_epoch else "")
    )
    callbacks = [
        # The CSV row of an epoch is written before its backup, so a kill between the two leaves
        # an extra row, which `_resume_progress` trims, never a missing one.
        keras.callbacks.CSVLogger(str(output_dir / HISTORY_FILE), append=True),
        keras.callbacks.BackupAndRestore(
            str(output_dir / BACKUP_DIR), double_checkpoint=True, delete_checkpoint=False
        ),
        keras.callbacks.ModelCheckpoint(
            str(output_dir / MODEL_FILE),
            monitor=MONITOR,
            save_best_only=True,
            initial_value_threshold=progress.best_loss,
        ),
        _ResumableEarlyStopping(progress, monitor=MONITOR, patience=config.patience, verbose=1),
        keras.callbacks.LearningRateScheduler(_cosine_schedule(config.model.learning_rate, config.epochs)),
        keras.callbacks.TensorBoard(str(output_dir / LOGS_DIR)),
    ]
    started = time.perf_counter()
    model.fit(
        train_data,
        validation_data=val_data,
        epochs=config.epochs,
        callbacks=callbacks,
        class_weight=weights,
        shuffle=False,  # the dataset shuffles itself, reproducibly from the seed
        verbose="auto",
    )
    seconds = time.perf_counter() - started

    history = pd.read_csv(output_dir / HISTORY_FILE)
    if not (output_dir / MODEL_FILE).is_file():
        raise RuntimeError(
            f"validation loss never became finite ({history[MONITOR].tolist()}): lower --learning-rate"
        )
    best = history.loc[history[MONITOR].idxmin()]
    summary = {
        "finished": True,
        "epochs": len(history),
        "stopped_early": len(history) < config.epochs,
        "best_epoch": int(best["epoch"]),
        "best": {key: float(value) for key, value in best.items() if key != "epoch"},
        "resumed_at_epoch": progress.start_epoch,
        "seconds": round(seconds, 1),
        "replicas": replicas,
        "precision": MIXED_POLICY if mixed else "float32",
    }
    temporary = output_dir / f"{RUN_FILE}.tmp"
    temporary.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    temporary.replace(output_dir / RUN_FILE)
    shutil.rmtree(output_dir / BACKUP_DIR, ignore_errors=True)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        meta = read_meta(args.data)
        config = _config(args).with_shards(meta)
        config.model.check_features(meta.features)
    except (ShardsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        summary = train(config, meta, overwrite=args.overwrite)
    except (ShardsError, RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    best = summary["best"]
    scores = ", ".join(f"{key} {value:.4f}" for key, value in best.items() if key.startswith("val_"))
    print(
        f"best epoch {summary['best_epoch'] + 1} of {summary['epochs']}: {scores}; "
        f"{args.run}/{MODEL_FILE} ({summary['seconds']:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
