"""The input pipeline: a split of the shards -> batches of (model inputs, targets).

Every step is a TensorFlow op, so the pipeline runs in tf.data's threads beside the training step:
shard files interleaved in parallel, songs shuffled as serialized records (cheap to hold) when
training, parsed by `genre_fusion.schema.parse_song` in parallel, batched and prefetched.

A training pass's order is a function of the run's seed and the epoch alone, never of the passes
before it in this process: `training_epochs` gives a resumed run the batches the uninterrupted
run would have seen.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from genre_fusion.data.inputs import AUDIO_EMBEDDINGS_INPUT, EMBEDDINGS_INPUT, LOG_MEL_INPUT, input_names
from genre_fusion.data.schema import parse_song
from genre_fusion.data.shards import ShardsError, ShardsMeta, shard_files

AUTOTUNE = tf.data.AUTOTUNE
# Serialized songs held for shuffling: a 30 s log-mel is about 330 kB, so about 340 MB.
SHUFFLE_BUFFER_SONGS = 1024
# Shard files read at once; each shard holds songs in random order already.
INTERLEAVE_FILES = 8
FLOAT_INPUTS = (LOG_MEL_INPUT, AUDIO_EMBEDDINGS_INPUT, EMBEDDINGS_INPUT)  # stored as float16, fed as float32


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for one epoch of a run seeded `seed` (both >= 0): well mixed, a function of the two alone."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def steps_per_epoch(meta: ShardsMeta, split: str, batch_size: int) -> int:
    """Batches in one pass over `split` (the last one may be smaller)."""
    return math.ceil(meta.split_sizes.get(split, 0) / batch_size)


def make_dataset(
    shards_dir: str | Path,
    split: str,
    meta: ShardsMeta,
    modalities: Sequence[str],
    batch_size: int,
    *,
    training: bool,
    seed: int = 0,
    epoch: int = 0,
) -> tf.data.Dataset:
    """Batches of `(inputs, targets)` from the `split` shards of `shards_dir`: one pass.

    `inputs` holds the model inputs of `modalities` (`genre_fusion.data.inputs` lists them): ``log_mel``
    float32 [batch, mel_bins, frames] or ``audio_embeddings`` float32 [batch, audio_patches, width]
    and ``audio_patches`` int32 [batch]; ``words`` string [batch] or ``embeddings`` float32 [batch,
    max_tokens, width] and ``tokens`` int32 [batch]. `targets` is float32 [batch, genres]: one-hot
    (label mode ``single``) or multi-hot (``multi``). With `training`, files and songs are shuffled
    in an order that is a function of (`seed`, `epoch`) alone (iterating again repeats it); without,
    they come in file order. The last batch may be smaller.
    Raises `ShardsError` when the split has no songs.
    """
    order_seed = epoch_seed(seed, epoch) if training else None
    return _one_pass(shards_dir, split, meta, modalities, batch_size, order_seed).prefetch(AUTOTUNE)


def training_epochs(
    shards_dir: str | Path,
    meta: ShardsMeta,
    modalities: Sequence[str],
    batch_size: int,
    *,
    seed: int,
    epochs: int,
    start_epoch: int = 0,
) -> tf.data.Dataset:
    """The training split's batches of epochs `start_epoch` to `epochs - 1`, one epoch after the
    other, each in the order of `make_dataset(..., training=True, seed=seed, epoch=epoch)`: a run
    resumed at an epoch sees what the uninterrupted run saw. For `model.fit` with
    ``steps_per_epoch=steps_per_epoch(meta, "train", batch_size)``; the next epoch's first batches
    are read while the current one ends and is validated.
    Raises `ShardsError` when the split has no songs, ValueError when no epoch is left.
    """
    if not 0 <= start_epoch < epochs:
        raise ValueError(f"no training epoch from {start_epoch} to {epochs - 1}")
    passes = [
        _one_pass(shards_dir, "train", meta, modalities, batch_size, epoch_seed(seed, epoch))
        for epoch in range(start_epoch, epochs)
    ]
    # Concatenation starts each pass when the one before it is exhausted: one pass's buffers at a time.
    return functools.reduce(tf.data.Dataset.concatenate, passes).prefetch(AUTOTUNE)


def _one_pass(
    shards_dir: str | Path,
    split: str,
    meta: ShardsMeta,
    modalities: Sequence[str],
    batch_size: int,
    order_seed: int | None,
) -> tf.data.Dataset:
    """One pass over `split` as `make_dataset` describes it, unprefetched; shuffled from `order_seed`
    unless it is None."""
    songs = meta.split_sizes.get(split, 0)
    if not songs:
        raise ShardsError(
            f"the {split} split of {shards_dir} has no songs: rebuild the shards with "
            f"`python -m data_prep build` and more songs or a larger {split} fraction in --split"
        )
    files = [str(path) for path in shard_files(shards_dir, split)]
    names = input_names(tuple(modalities), meta.features)
    genres = len(meta.genres)
    multi_label = meta.label_mode == "multi"

    def to_example(serialized: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        song = parse_song(serialized, meta.features)
        inputs = {
            name: tf.cast(song[name], tf.float32) if name in FLOAT_INPUTS else song[name] for name in names
        }
        labels = tf.one_hot(song["labels"], genres)  # [labels of the song, genres]
        return inputs, tf.reduce_max(labels, axis=0) if multi_label else labels[0]

    shuffled = order_seed is not None
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shuffled:
        dataset = dataset.shuffle(len(files), seed=order_seed, reshuffle_each_iteration=False)
    dataset = dataset.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), INTERLEAVE_FILES),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    if shuffled:
        dataset = dataset.shuffle(
            min(songs, SHUFFLE_BUFFER_SONGS), seed=order_seed, reshuffle_each_iteration=False
        )
    dataset = dataset.map(to_example, num_parallel_calls=AUTOTUNE)
    dataset = dataset.batch(batch_size, num_parallel_calls=AUTOTUNE)
    # Interleaving hides the length; stating it gives Keras its epoch length (progress bars) and
    # fails loudly if the files hold other songs than meta.json counts.
    return dataset.apply(tf.data.experimental.assert_cardinality(steps_per_epoch(meta, split, batch_size)))
