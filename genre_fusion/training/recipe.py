"""The training recipe that `genre_fusion.train` and `tuning` share, so that a tuned setting means
the same in a training run.

`build_model` compiles the loss, metrics and Adam optimiser; this module adds the rest:

- What the model adapts to (`training_statistics`): the training split's audio statistics (per
  mel bin, or per embedding dimension) and vocabulary, as `data_prep build` counted them.
- Class weights (`class_weights`): a song weighs the inverse frequency of its genre in the
  training split (single-label shards only).
- Learning rate: a per-epoch cosine decay from the config's rate, a function of the epoch alone,
  so a resumed run continues it.
- Model selection (`selection_monitor`): the validation number that picks the best epoch, stops
  training early and ranks tuner trials. ``val_loss`` for single-label shards; ``val_macro_f1``
  with class weights (the weighting asks for every genre to count alike, which the unweighted
  validation loss does not); ``val_mean_average_precision`` for multi-label shards (a ranking
  measure: the loss and a 0.5-threshold F1 reward calibration). Validation macro-F1 and mAP are
  computed by `genre_fusion.evaluation.metrics`, as evaluation reports them, and logged every epoch.
- Randomness: every random layer (dropout, modality dropout) is reseeded at the start of each
  epoch from its initial seed and the epoch, as the data order is (`genre_fusion.data.pipeline`), so an
  epoch draws the same whether the run went through or was resumed.
- A training loss that becomes NaN or infinite stops training with `TrainingDiverged`, before the
  epoch ends: no row in the history, no backup, no checkpoint of it.
- TF op determinism (`op_determinism`): on while training or a search runs, as it was afterwards.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from genre_fusion.compat import disable_op_determinism, is_op_determinism_enabled
from genre_fusion.data.inputs import LOG_MEL_INPUT, MODALITIES, WORDS_INPUT
from genre_fusion.data.pipeline import epoch_seed, make_dataset
from genre_fusion.data.shards import ShardsError, ShardsMeta
from genre_fusion.data.train_statistics import (
    STATISTICS_FILE,
    VOCABULARY_FILE,
    ShardStatistics,
    TrainStatistics,
    read_statistics,
)
from genre_fusion.evaluation.metrics import selection_scores
from genre_fusion.model.config import ModelConfig
from genre_fusion.runs.config import RunError

VALIDATION_PREFIX = "val_"
# The name Keras gives every random layer's state (`keras.random.SeedGenerator`).
SEED_STATE_NAME = "seed_generator_state"


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; the message names the epoch and batch."""


@dataclass(frozen=True)
class Monitor:
    """A logged number that selects models: its name in the logs and whether higher is better."""

    name: str
    mode: str  # "min" or "max", as Keras callbacks and Keras Tuner objectives take it

    def best_row(self, values):
        """Index of the best of `values` (a pandas Series; NaN never wins); None when none is finite."""
        finite = values[np.isfinite(values)]
        if finite.empty:
            return None
        return finite.idxmax() if self.mode == "max" else finite.idxmin()


@dataclass(frozen=True)
class Progress:
    """Where an interrupted run stopped: the epoch it resumes with, and its best epoch and monitor
    value so far (`best_value` None: nothing to resume)."""

    start_epoch: int = 0
    best_epoch: int = -1
    best_value: float | None = None


@contextlib.contextmanager
def op_determinism(enabled: bool) -> Iterator[None]:
    """TF op determinism on (or off) while the block runs; as it was before afterwards, whether the
    block returns or raises (the setting is process-wide)."""
    before = is_op_determinism_enabled()
    _set_op_determinism(enabled)
    try:
        yield
    finally:
        _set_op_determinism(before)


def _set_op_determinism(enabled: bool) -> None:
    if enabled:
        tf.config.experimental.enable_op_determinism()
    else:
        disable_op_determinism()


def selection_monitor(label_mode: str, use_class_weights: bool) -> Monitor:
    """The number that selects epochs and trials (see the module's description)."""
    if label_mode == "multi":
        return Monitor(VALIDATION_PREFIX + "mean_average_precision", "max")
    if use_class_weights:
        return Monitor(VALIDATION_PREFIX + "macro_f1", "max")
    return Monitor(VALIDATION_PREFIX + "loss", "min")


def training_statistics(shards_dir: str, meta: ShardsMeta, batch_size: int) -> ShardStatistics:
    """The training split's statistics that `data_prep build` wrote into `shards_dir`. Log-mel
    shards built before it wrote them are read through once to count the same numbers (and a note
    says so). Shards of a pretrained audio encoder's embeddings always have them (every build that
    writes embeddings writes the statistics too), so there a missing file means a changed folder:
    `ShardsError` says so instead of counting."""
    statistics = read_statistics(shards_dir)
    if statistics is not None:
        return statistics
    if meta.features.uses_audio_embeddings:
        raise ShardsError(
            f"{shards_dir} holds audio embeddings of {meta.features.audio_encoder} but lacks "
            f"{STATISTICS_FILE} or {VOCABULARY_FILE}, which its build wrote: restore them, or rebuild "
            "the shards with `python -m data_prep build`"
        )
    print(
        f"note: {shards_dir} holds no training statistics (built by an earlier version): counting them "
        "from the training split now; rebuild the shards to skip this",
        file=sys.stderr,
    )
    counted = TrainStatistics()
    for inputs, _ in make_dataset(shards_dir, "train", meta, MODALITIES, batch_size, training=False):
        words = [text.decode() for text in inputs[WORDS_INPUT].numpy()] if WORDS_INPUT in inputs else []
        counted.update(inputs[LOG_MEL_INPUT].numpy(), words)
    return counted.summary()


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


def cosine_schedule(learning_rate: float, epochs: int):
    """Per-epoch cosine decay: a function of the epoch alone, so a resumed run continues it."""

    def schedule(epoch: int, current: float) -> float:
        return learning_rate * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))

    return schedule


class ValidationScores(keras.callbacks.Callback):
    """Adds evaluation's numbers of the validation split to each epoch's logs, prefixed ``val_``:
    macro-F1 (and mAP for multi-label), by `genre_fusion.metrics.selection_scores`, NaN where
    undefined; Keras' own ``val_accuracy`` stays. Must come before the callbacks that read them
    (Keras hands every callback the same logs, in list order). Raises `TrainingDiverged` when the
    model predicts NaN or infinity.

    The songs are predicted here, outside any distribution strategy: every worker of a
    multi-worker run scores every validation song, so all of them select alike."""

    def __init__(self, validation_data: tf.data.Dataset, label_mode: str):
        super().__init__()
        self.inputs = validation_data.map(lambda inputs, targets: inputs)
        self.targets = np.concatenate([targets.numpy() for _, targets in validation_data])
        self.label_mode = label_mode
        self.forward = None

    def set_model(self, model):
        super().set_model(model)
        self.forward = tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)

    def on_epoch_end(self, epoch, logs=None):
        probabilities = np.concatenate([self.forward(inputs).numpy() for inputs in self.inputs])
        if not np.isfinite(probabilities).all():
            raise TrainingDiverged(
                f"the model predicts NaN or infinity on the validation split in epoch {epoch + 1}"
            )
        scores = selection_scores(self.targets, probabilities, self.label_mode)
        for name, value in scores.items():
            logs.setdefault(VALIDATION_PREFIX + name, math.nan if value is None else value)


class EpochSeeds(keras.callbacks.Callback):
    """Reseeds every random layer at the start of each epoch from its initial seed and the epoch,
    so that the masks an epoch draws do not depend on how many epochs this process ran before."""

    def on_train_begin(self, logs=None):
        # Before any training step the first element of each state is still its initial seed.
        self.states = [
            (variable, int(variable.numpy()[0]))
            for variable in self.model.variables
            if variable.name == SEED_STATE_NAME
        ]

    def on_epoch_begin(self, epoch, logs=None):
        for variable, seed in self.states:
            variable.assign(np.array([epoch_seed(seed, epoch), 0], dtype=variable.dtype))


class StopOnDivergence(keras.callbacks.TerminateOnNaN):
    """TerminateOnNaN that raises `TrainingDiverged` naming the epoch and batch, before the epoch's
    end: its callbacks (history, backup, checkpoint) never see the diverged state."""

    def __init__(self):
        super().__init__(raise_error=True)
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        try:
            super().on_batch_end(batch, logs)
        except RuntimeError:
            raise TrainingDiverged(
                f"the training loss became {logs['loss']} in epoch {self.epoch + 1}, batch {batch + 1}"
            ) from None


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that carries on counting patience from an interrupted run's history."""

    def __init__(self, progress: Progress, **kwargs):
        super().__init__(**kwargs)
        self.progress = progress

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.progress.best_value is not None:
            self.best = self.progress.best_value
            self.best_epoch = self.progress.best_epoch
            self.wait = self.progress.start_epoch - 1 - self.progress.best_epoch


def training_callbacks(
    config: ModelConfig,
    meta: ShardsMeta,
    validation_data: tf.data.Dataset,
    *,
    epochs: int,
    patience: int,
    monitor: Monitor,
    progress: Progress | None = None,
) -> list[keras.callbacks.Callback]:
    """The recipe's callbacks for `model.fit` over `epochs` epochs in all (a resumed run's too),
    validated on `validation_data` (batches of (inputs, targets)), early stopping on `monitor`
    after `patience` epochs without a better value, counted on from `progress` when resuming.
    Callbacks that read the monitor go after these."""
    return [
        ValidationScores(validation_data, meta.label_mode),
        EpochSeeds(),
        StopOnDivergence(),
        keras.callbacks.LearningRateScheduler(cosine_schedule(config.learning_rate, epochs)),
        ResumableEarlyStopping(
            progress or Progress(), monitor=monitor.name, mode=monitor.mode, patience=patience, verbose=1
        ),
    ]
