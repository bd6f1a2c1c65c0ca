"""Benchmark: does the input pipeline keep up with training?

    python bench/input_pipeline.py SHARDS [--batches N] [--batch-size B] [--modalities audio,lyrics]
        [--rounds R]

Trains the default model (`ModelConfig()`) on the training split for N batches, fed two ways:

- from the shards, by `genre_fusion.dataset.make_dataset` (interleaved reads, parallel parsing,
  shuffling, prefetching), as `python -m genre_fusion.train` feeds it;
- from memory: the same batches cached in RAM by `Dataset.cache()` after one pass.

It prints the training songs/s of both (best of R alternating rounds, so that a busy machine
slows both alike), their ratio (>= 0.9: the pipeline never starves the model), and the songs/s
the pipeline delivers alone, without a model.

Then it trains E whole epochs with validation, fed as `python -m genre_fusion.train` feeds them
(`training_epochs`), and prints per epoch its wall time beside steps x the median step: an epoch
much longer than that stalls somewhere (e.g. a first step that waits for a shuffle buffer).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import keras

from genre_fusion.data.inputs import MODALITIES
from genre_fusion.data.pipeline import make_dataset, steps_per_epoch, training_epochs
from genre_fusion.data.shards import read_meta
from genre_fusion.model.builder import build_model
from genre_fusion.model.config import ModelConfig
from genre_fusion.runs.config import TrainConfig
from genre_fusion.training.recipe import training_statistics

SEED = 0
WARMUP_BATCHES = 3  # traces the training step and fills the memory cache's first batches
TARGET_RATIO = 0.9


def songs_per_second(model: keras.Model, dataset, batches: int, batch_size: int) -> float:
    """Training throughput over `batches` steps of the endlessly repeated `dataset`."""
    started = time.perf_counter()
    model.fit(dataset, steps_per_epoch=batches, epochs=1, shuffle=False, verbose=0)
    return batches * batch_size / (time.perf_counter() - started)


def pipeline_songs_per_second(dataset, batches: int, batch_size: int) -> float:
    started = time.perf_counter()
    for _ in dataset.take(batches):
        pass
    return batches * batch_size / (time.perf_counter() - started)


class StepClock(keras.callbacks.Callback):
    """Wall seconds of every training step and of every whole epoch (validation included)."""

    def __init__(self):
        super().__init__()
        self.steps: list[list[float]] = []
        self.epochs: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.steps.append([])
        self._epoch_started = self._step_started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self.steps[-1].append(now - self._step_started)
        self._step_started = now

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(time.perf_counter() - self._epoch_started)


def epoch_times(model: keras.Model, shards: Path, meta, modalities, batch_size: int, epochs: int) -> str:
    """Train `epochs` epochs as training does; one line per epoch: wall, steps x median step."""
    clock = StepClock()
    model.fit(
        training_epochs(shards, meta, modalities, batch_size, seed=SEED, epochs=epochs),
        validation_data=make_dataset(shards, "val", meta, modalities, batch_size, training=False),
        steps_per_epoch=steps_per_epoch(meta, "train", batch_size),
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=[clock],
    )
    lines = []
    for epoch, (wall, steps) in enumerate(zip(clock.epochs, clock.steps, strict=True)):
        median = statistics.median(steps)
        lines.append(
            f"  epoch {epoch + 1}: {wall:6.2f} s; {len(steps)} steps x median {median:.3f} s = "
            f"{len(steps) * median:6.2f} s; first step {steps[0]:.3f} s"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("shards", type=Path)
    parser.add_argument("--batches", type=int, default=20, help="training steps timed per round")
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--modalities", default=",".join(MODALITIES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="whole epochs timed step by step")
    args = parser.parse_args()

    meta = read_meta(args.shards)
    config = ModelConfig(modalities=args.modalities)
    keras.utils.set_random_seed(SEED)

    def training_batches():
        return make_dataset(
            args.shards, "train", meta, config.modalities, args.batch_size, training=True, seed=SEED
        )

    model = build_model(config, meta, training_statistics(args.shards, meta, args.batch_size))
    from_shards = training_batches().repeat()
    in_memory = training_batches().cache()
    for _ in in_memory:  # one pass fills the cache
        pass
    in_memory = in_memory.repeat()
    for dataset in (from_shards, in_memory):
        songs_per_second(model, dataset, WARMUP_BATCHES, args.batch_size)

    shards_rates, memory_rates = [], []
    for _ in range(args.rounds):
        shards_rates.append(songs_per_second(model, from_shards, args.batches, args.batch_size))
        memory_rates.append(songs_per_second(model, in_memory, args.batches, args.batch_size))
    shards_rate, memory_rate = max(shards_rates), max(memory_rates)
    ratio = shards_rate / memory_rate
    alone = pipeline_songs_per_second(from_shards, args.batches * 2, args.batch_size)
    features = meta.features
    verdict = "ok" if ratio >= TARGET_RATIO else "below"
    print(
        f"{model.name}, {model.count_params():,} parameters; {meta.split_sizes['train']} training songs "
        f"of {features.clip_seconds:g} s ({features.mel_bins} x {features.frames} log-mel), "
        f"batch {args.batch_size}, {args.batches} batches, best of {args.rounds} rounds\n"
        f"  training from shards: {shards_rate:8.1f} songs/s\n"
        f"  training from memory: {memory_rate:8.1f} songs/s\n"
        f"  ratio:                {ratio:8.2f} ({verdict} {TARGET_RATIO})\n"
        f"  pipeline alone:       {alone:8.1f} songs/s"
    )
    print(f"{args.epochs} whole epochs with validation, as training runs them (the first includes tracing):")
    print(epoch_times(model, args.shards, meta, config.modalities, args.batch_size, args.epochs))
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
