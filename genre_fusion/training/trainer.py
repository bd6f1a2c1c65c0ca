"""Training a run: the distribution strategy, the precision, the model and `fit`.

`train(config, meta)` fits (or resumes) the run of a `TrainConfig` on the shards of `meta`, by the
one recipe of `genre_fusion.training.recipe` that tuning follows too, and writes run.json.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from pathlib import Path

import keras
import pandas as pd
import tensorflow as tf

from genre_fusion.compat import build_for_string_inputs
from genre_fusion.data.pipeline import make_dataset, steps_per_epoch, training_epochs
from genre_fusion.data.shards import ShardsMeta
from genre_fusion.data.train_statistics import ShardStatistics
from genre_fusion.files.atomic import write_atomically
from genre_fusion.files.owned_outputs import record_outputs
from genre_fusion.model.builder import build_model
from genre_fusion.runs.config import TrainConfig
from genre_fusion.runs.layout import (
    BACKUP_DIR,
    HISTORY_FILE,
    LOGS_DIR,
    MODEL_FILE,
    RUN_FILE,
    RUN_KIND,
    WORKERS_DIR,
)
from genre_fusion.training.recipe import (
    Monitor,
    Progress,
    TrainingDiverged,
    class_weights,
    op_determinism,
    selection_monitor,
    training_callbacks,
    training_statistics,
)
from genre_fusion.training.resume import RunBackup, read_backup, resume_progress, training_left
from genre_fusion.training.run_directory import output_dir as run_output_dir
from genre_fusion.training.run_directory import prepare_run_dir

MIXED_POLICY = "mixed_float16"



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
    output_dir = run_output_dir(run_dir, strategy)
    if output_dir != run_dir:
        record_outputs(run_dir, RUN_KIND, [WORKERS_DIR])
    # Last of the checks, as --overwrite removes the old run: bad shards must not cost it.
    prepare_run_dir(config, meta, output_dir, overwrite)
    progress = resume_progress(output_dir, monitor)
    config.save(output_dir)

    mixed = _use_mixed_precision(config)
    started = time.perf_counter()
    if training_left(progress, config):  # else killed after its last backup, before run.json
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
        build_for_string_inputs(model, strategy, next(iter(val_data)))
    _, backup_weights = read_backup(output_dir)
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
        RunBackup(output_dir / BACKUP_DIR),
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
