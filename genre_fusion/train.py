"""`python -m genre_fusion.train`: fit the genre model from feature shards into a run directory.

    python -m genre_fusion.train --data SHARDS --run RUN_DIR [--epochs N] [--batch-size B]
        [--modalities audio,lyrics] [--fusion concat|gated|attention] [--conv-blocks N] ...
        [--hparams best_hparams.json] [--class-weights] [--seed S] [--patience P]
        [--distribute] [--mixed-precision] [--overwrite]

Every `ModelConfig` field has a flag (``--lstm-units 64``); ``--hparams`` reads a JSON object of
such fields (the tuner's best_hparams.json) and explicit flags override it. The run directory's
layout is described in `genre_fusion.train_config`.

Training follows `genre_fusion.recipe`, as tuning does: Adam with a per-epoch cosine decay of the
learning rate, categorical cross-entropy (binary for multi-label shards), optional class weights,
early stopping and the best checkpoint by the recipe's monitor (validation loss; macro-F1 with
class weights; mAP for multi-label shards; recorded in run.json), TensorBoard and CSV logs.

A run that is killed resumes from its last finished epoch when the same command runs again, and
ends with the history an uninterrupted run has: the data order and the random layers' seeds are
functions of the seed and the epoch. A finished run is kept unless ``--overwrite``, which removes
only what the project wrote into the folder (`genre_fusion.owned_outputs`) and refuses a folder
that holds anything else. Bad input (a bad option value, missing or incompatible shards, an empty
split, a finished run, a run of other shards or settings, a --run that cannot be written) stops
with a message and exit code 2, before anything is changed; a loss that becomes NaN or infinite
stops with exit code 1 and leaves the run unfinished.
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
from dataclasses import fields
from pathlib import Path

import keras
import pandas as pd
import tensorflow as tf

from genre_fusion.atomic_files import write_atomically
from genre_fusion.dataset import make_dataset, steps_per_epoch, training_epochs
from genre_fusion.interruption import on_interrupt
from genre_fusion.model import FUSIONS, ModelConfig, SettingError, build_model, option_name
from genre_fusion.owned_outputs import (
    OutputsError,
    clear_outputs,
    foreign_entries,
    owned_outputs,
    record_outputs,
)
from genre_fusion.recipe import (
    Monitor,
    Progress,
    TrainingDiverged,
    class_weights,
    op_determinism,
    selection_monitor,
    training_callbacks,
    training_statistics,
)
from genre_fusion.shards import ShardsError, ShardsMeta, read_meta
from genre_fusion.train_config import (
    BACKUP_DIR,
    CONFIG_FILE,
    HISTORY_FILE,
    LEGACY_RUN_ENTRIES,
    LOGS_DIR,
    MODEL_FILE,
    RUN_FILE,
    RUN_KIND,
    TRAINING_OUTPUTS,
    WORKERS_DIR,
    RunError,
    TrainConfig,
    read_run_summary,
)
from genre_fusion.train_statistics import ShardStatistics

# The backup's commit record: the epoch a resumed fit() begins with and the weights file to load.
BACKUP_METADATA_FILE = "training_metadata.json"
BACKUP_WEIGHTS_PATTERN = "epoch-{:05d}.weights.h5"
# The weights of a backup by Keras' BackupAndRestore (versions before `_RunBackup`), named by no record.
KERAS_BACKUP_WEIGHTS = "latest.weights.h5"
MIXED_POLICY = "mixed_float16"


# ------------------------------------------------------------------------------------- command line


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
    parser.add_argument("--seed", type=int, help=f"random seed, 0 to 2**32 - 1 (default {defaults.seed})")
    parser.add_argument(
        "--patience",
        type=int,
        help=f"epochs without a better monitored value before stopping (default {defaults.patience})",
    )
    parser.add_argument(
        "--class-weights",
        action="store_true",
        default=None,
        help="weight songs by the inverse frequency of their genre (single-label shards); selects "
        "epochs by validation macro-F1",
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
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in --run (only what training and evaluation wrote there)",
    )

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
                option_name(item.name),
                type=type(default),
                choices=FUSIONS if item.name == "fusion" else None,
                help=f"default {default}",
            )
    return parser


def _read_hparams(path: Path) -> dict:
    """The JSON object of model settings in `path`; ValueError naming --hparams and the problem."""
    if path.is_dir():
        raise ValueError(
            f"--hparams {path} is a folder: expected a JSON file of model settings "
            "(tuning's best_hparams.json)"
        )
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"cannot read --hparams {path}: {error.strerror}") from None
    except ValueError as error:  # not JSON, or not UTF-8
        raise ValueError(f"--hparams {path} is not a JSON file ({error})") from None
    if not isinstance(values, dict):
        raise ValueError(f"--hparams {path} must hold a JSON object of model settings")
    return values


def _config(args: argparse.Namespace, meta: ShardsMeta) -> TrainConfig:
    """Defaults, then the --hparams file, then explicit flags, for the shards of `meta`.

    Raises ValueError naming the option (or the --hparams file) of a bad value."""
    from_file = _read_hparams(args.hparams) if args.hparams else {}
    flags = {
        item.name: getattr(args, item.name)
        for item in fields(ModelConfig)
        if getattr(args, item.name) is not None
    }
    training = {
        item.name: getattr(args, item.name)
        for item in fields(TrainConfig)
        if item.name not in ("data", "run", "model") and getattr(args, item.name, None) is not None
    }
    try:
        model = ModelConfig.from_dict({**from_file, **flags})
        model.check_features(meta.features)
        config = TrainConfig(data=args.data, run=args.run, model=model, **training)
    except SettingError as error:
        if error.setting in from_file and error.setting not in flags:
            raise ValueError(f"--hparams {args.hparams}: {error}") from None
        raise ValueError(error.for_option()) from None
    except ValueError as error:  # unknown settings: only the file names settings
        raise ValueError(f"--hparams {args.hparams}: {error}") from None
    return config.with_shards(meta)


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


def _check_writable(run_dir: Path) -> None:
    """`RunError` unless `run_dir` is a folder this process may write into, or can be made one."""
    existing = run_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise RunError(
            f"--run {run_dir} cannot be made: {existing} is a file, not a folder; choose another --run"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunError(f"--run {run_dir} cannot be written: {existing} is read-only; choose another --run")


def _holds_run_config(run_dir: Path) -> bool:
    """Whether `run_dir` has a config.json that loads as a `TrainConfig`."""
    try:
        TrainConfig.load(run_dir)
    except RunError:
        return False
    return True


def _prepare_run_dir(config: TrainConfig, meta: ShardsMeta, run_dir: Path, overwrite: bool) -> None:
    """Check `run_dir` for the run of `config`, then record what training writes there.

    Refuses, changing nothing (`RunError`, `OutputsError`): a place that cannot be written; a
    folder that is not a run directory; a finished run, or an unfinished one of other shards or
    settings, unless `overwrite`. With `overwrite`, after every check, removes what the project
    wrote there and refuses a folder that holds anything else. A run directory made before the
    record of its entries existed owns `LEGACY_RUN_ENTRIES` when its config.json is a run's."""
    _check_writable(run_dir)
    marker_kind, _ = owned_outputs(run_dir)
    legacy = LEGACY_RUN_ENTRIES if _holds_run_config(run_dir) else ()
    if overwrite:
        clear_outputs(run_dir, RUN_KIND, legacy)
    elif (run_dir / CONFIG_FILE).is_file():
        previous = TrainConfig.load(run_dir)  # RunError for a config.json of something else
        if read_run_summary(run_dir) is not None:
            raise RunError(
                f"{run_dir} holds a finished run ({RUN_FILE}): choose another --run, or pass --overwrite "
                "to replace it"
            )
        try:
            previous.check_shards(meta, config.data)
        except RunError as error:
            raise RunError(f"{error} (another --run, or --overwrite to replace this run)") from None
        _check_same_settings(previous, config, run_dir)
    elif foreign_entries(run_dir, RUN_KIND, legacy):
        raise RunError(
            f"{run_dir} exists and is not a run directory (no {CONFIG_FILE}): choose a new or empty --run"
        )
    # Everything training may create, before it exists: a kill never leaves an unrecorded file.
    adopted = [name for name in legacy if (run_dir / name).exists()] if marker_kind is None else []
    record_outputs(run_dir, RUN_KIND, [*TRAINING_OUTPUTS, *adopted])


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


# ------------------------------------------------------------------------------------ resuming


def _read_backup(output_dir: Path) -> tuple[int, Path | None]:
    """The epoch the backup resumes with and its weights file; (0, None) without a backup."""
    metadata = output_dir / BACKUP_DIR / BACKUP_METADATA_FILE
    if not metadata.is_file():
        return 0, None
    try:
        record = json.loads(metadata.read_text(encoding="utf-8"))
        epoch = record["epoch"]
        weights = output_dir / BACKUP_DIR / record.get("weights", KERAS_BACKUP_WEIGHTS)
        if not weights.is_file():
            raise ValueError(f"{weights.name} is missing")
    except (ValueError, KeyError, TypeError) as error:
        raise RunError(
            f"the backup of the interrupted run in {output_dir} is damaged ({metadata}: {error}): "
            "pass --overwrite to start the run over"
        ) from None
    return epoch, weights


class _RunBackup(keras.callbacks.Callback):
    """Keeps the state of the last finished epoch in `folder`: the weights (optimizer included)
    in a file of their own, committed by an atomic rename of the metadata naming it, so that a
    kill at any moment leaves the previous epoch's backup or this one, whole. Last of the epoch's
    callbacks: a kill before the commit reruns the epoch, whose history row and checkpoint are
    then written again."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = folder

    def on_epoch_end(self, epoch, logs=None):
        self.folder.mkdir(parents=True, exist_ok=True)
        weights = BACKUP_WEIGHTS_PATTERN.format(epoch + 1)
        self.model.save_weights(self.folder / weights, overwrite=True)
        record = {"epoch": epoch + 1, "weights": weights}
        write_atomically(self.folder / BACKUP_METADATA_FILE, json.dumps(record))
        for stale in self.folder.glob("*.weights.h5"):
            if stale.name != weights:
                stale.unlink()


def _trim_history(path: Path, start_epoch: int) -> pd.DataFrame | None:
    """Keep the rows of history.csv of the epochs before `start_epoch`, byte for byte (a kill after
    an epoch's row, before its backup, leaves rows too many); returns them. Without any (the file
    is missing, or empty as CSVLogger creates it), removes the file and returns None."""
    if not path.is_file():
        return None
    header, *rows = path.read_bytes().splitlines(keepends=True) or [b""]
    kept = [row for row in rows if _row_epoch(row) < start_epoch]
    if not kept:
        path.unlink()
        return None
    write_atomically(path, header + b"".join(kept))
    return pd.read_csv(path)


def _row_epoch(row: bytes) -> float:
    """The epoch of a history row; infinity for a row cut short by a kill."""
    epoch = row.split(b",", 1)[0]
    return int(epoch) if epoch.isdigit() and row.endswith(b"\n") else math.inf


def _resume_progress(output_dir: Path, monitor: Monitor) -> Progress:
    """The epoch the backup resumes with, and the best epoch by `monitor` in history.csv, trimmed
    to the epochs the backup holds."""
    start_epoch, _ = _read_backup(output_dir)
    history = _trim_history(output_dir / HISTORY_FILE, start_epoch)
    if history is None:
        return Progress(start_epoch)
    if monitor.name not in history:
        raise RunError(
            f"{output_dir / HISTORY_FILE} has no {monitor.name}, which this version selects epochs by: "
            "pass --overwrite to start the run over"
        )
    best = monitor.best_row(history[monitor.name])
    if best is None:
        return Progress(start_epoch)
    return Progress(start_epoch, int(history.loc[best, "epoch"]), float(history.loc[best, monitor.name]))


def _training_left(progress: Progress, config: TrainConfig) -> bool:
    """Whether the run has epochs to train: not at its last epoch, not stopped early already."""
    if progress.start_epoch >= config.epochs:
        return False
    waited = progress.start_epoch - 1 - progress.best_epoch
    return progress.best_value is None or progress.start_epoch < 2 or waited < config.patience


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


def train(config: TrainConfig, meta: ShardsMeta, overwrite: bool = False) -> dict:
    """Fit (or resume) the run of `config` on the shards of `meta`; returns run.json's content.

    Raises `ShardsError` / `RunError` / `OutputsError` for bad input, before anything is changed,
    and `TrainingDiverged` when the loss becomes NaN or infinite (the run stays unfinished). TF op
    determinism is as `config.deterministic` asks while it runs, and as it was afterwards."""
    strategy = _strategy(config)  # first: a multi-worker strategy must exist before other TF work
    with op_determinism(config.deterministic):
        return _train(config, meta, overwrite, strategy)


def _train(config: TrainConfig, meta: ShardsMeta, overwrite: bool, strategy: tf.distribute.Strategy) -> dict:
    # Before any dataset: a shuffle's seed pairs with the global seed of the moment it is made.
    keras.utils.set_random_seed(config.seed)
    modalities = config.model.modalities
    val_data = make_dataset(config.data, "val", meta, modalities, config.batch_size, training=False)
    weights = class_weights(meta) if config.class_weights else None
    monitor = selection_monitor(meta.label_mode, config.class_weights)
    run_dir = Path(config.run)
    output_dir = _output_dir(run_dir, strategy)
    if output_dir != run_dir:
        record_outputs(run_dir, RUN_KIND, [WORKERS_DIR])
    # Last of the checks, as --overwrite removes the old run: bad shards must not cost it.
    _prepare_run_dir(config, meta, output_dir, overwrite)
    progress = _resume_progress(output_dir, monitor)
    config.save(output_dir)

    mixed = _use_mixed_precision(config)
    started = time.perf_counter()
    if _training_left(progress, config):  # else killed after its last backup, before run.json
        statistics = training_statistics(config.data, meta, config.batch_size)
        _fit(config, meta, strategy, mixed, output_dir, progress, monitor, weights, val_data, statistics)
    seconds = time.perf_counter() - started

    history = pd.read_csv(output_dir / HISTORY_FILE)
    best = monitor.best_row(history[monitor.name])
    if best is None or not (output_dir / MODEL_FILE).is_file():
        raise TrainingDiverged(f"{monitor.name} never became finite ({history[monitor.name].tolist()})")
    best = history.loc[best]
    summary = {
        "finished": True,
        "epochs": len(history),
        "stopped_early": len(history) < config.epochs,
        "monitor": monitor.name,
        "best_epoch": int(best["epoch"]),
        "best": {key: float(value) for key, value in best.items() if key != "epoch"},
        "resumed_at_epoch": progress.start_epoch,
        "seconds": round(seconds, 1),
        "replicas": strategy.num_replicas_in_sync,
        "precision": MIXED_POLICY if mixed else "float32",
    }
    write_atomically(output_dir / RUN_FILE, json.dumps(summary, indent=2) + "\n")
    shutil.rmtree(output_dir / BACKUP_DIR, ignore_errors=True)
    return summary


def _fit(
    config: TrainConfig,
    meta: ShardsMeta,
    strategy: tf.distribute.Strategy,
    mixed: bool,
    output_dir: Path,
    progress: Progress,
    monitor: Monitor,
    weights: dict[int, float] | None,
    val_data: tf.data.Dataset,
    statistics: ShardStatistics,
) -> None:
    """Build the model (in float16 when `mixed`), restore the backup and train the epochs left."""
    modalities = config.model.modalities
    train_data = training_epochs(
        config.data,
        meta,
        modalities,
        config.batch_size,
        seed=config.seed,
        epochs=config.epochs,
        start_epoch=progress.start_epoch,
    )
    fit_val_data = val_data
    if strategy.num_replicas_in_sync > 1 or "TF_CONFIG" in os.environ:
        # Every worker reads every file and keeps its share of the songs: works for any shard count.
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        train_data, fit_val_data = train_data.with_options(options), val_data.with_options(options)

    previous_policy = keras.mixed_precision.dtype_policy()
    if mixed:
        keras.mixed_precision.set_dtype_policy(MIXED_POLICY)
    try:
        with strategy.scope():
            model = build_model(config.model, meta, statistics)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)
    if strategy.num_replicas_in_sync > 1 and any(value.dtype == "string" for value in model.inputs):
        _build_for_string_inputs(model, strategy, next(iter(val_data)))
    _, backup_weights = _read_backup(output_dir)
    if backup_weights is not None:
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)  # its state is in the backup too
        model.load_weights(backup_weights)

    replicas = strategy.num_replicas_in_sync
    print(
        f"training {model.name} ({model.count_params():,} parameters) on {meta.split_sizes['train']} songs "
        f"of {len(meta.genres)} genres, {'mixed float16' if mixed else 'float32'}"
        + (f", {replicas} replica(s) ({type(strategy).__name__})" if config.distribute else "")
        + f", best epoch by {monitor.name} -> {output_dir}"
        + (f"; resuming at epoch {progress.start_epoch + 1}" if progress.start_epoch else "")
    )
    callbacks = [
        # The validation data of the recipe's own scores is local: every worker scores every song.
        *training_callbacks(
            config.model,
            meta,
            val_data,
            epochs=config.epochs,
            patience=config.patience,
            monitor=monitor,
            progress=progress,
        ),
        keras.callbacks.CSVLogger(str(output_dir / HISTORY_FILE), append=True),
        keras.callbacks.ModelCheckpoint(
            str(output_dir / MODEL_FILE),
            monitor=monitor.name,
            mode=monitor.mode,
            save_best_only=True,
            initial_value_threshold=progress.best_value,
        ),
        keras.callbacks.TensorBoard(str(output_dir / LOGS_DIR)),
        _RunBackup(output_dir / BACKUP_DIR),
    ]
    model.fit(
        train_data,
        validation_data=fit_val_data,
        epochs=config.epochs,
        initial_epoch=progress.start_epoch,
        steps_per_epoch=steps_per_epoch(meta, "train", config.batch_size),
        callbacks=callbacks,
        class_weight=weights,
        shuffle=False,  # the dataset shuffles itself, reproducibly from the seed and the epoch
        verbose="auto",
    )


@on_interrupt("the epochs finished so far are kept; rerun the same command to resume")
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if Path(args.data).is_file():
            raise ShardsError(
                f"--data {args.data} is a file: expected the shards folder of `python -m data_prep build`"
            )
        meta = read_meta(args.data)
        config = _config(args, meta)
    except ValueError as error:  # ShardsError is one
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        summary = train(config, meta, overwrite=args.overwrite)
    except (ShardsError, RunError, OutputsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingDiverged as error:
        print(
            f"error: training diverged: {error}. The run is unfinished: start it over with a lower "
            "--learning-rate and --overwrite",
            file=sys.stderr,
        )
        return 1
    best = summary["best"]
    scores = ", ".join(f"{key} {value:.4f}" for key, value in best.items() if key.startswith("val_"))
    print(
        f"best epoch {summary['best_epoch'] + 1} of {summary['epochs']} by {summary['monitor']}: {scores}; "
        f"{args.run}/{MODEL_FILE} ({summary['seconds']:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
