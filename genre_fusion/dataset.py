"""The input pipeline: a split of the shards -> batches of (model inputs, targets).

Every step is a TensorFlow op, so the pipeline runs in tf.data's threads beside the training step:
shard files interleaved in parallel, songs shuffled as serialized records (cheap to hold) when
training, parsed by `genre_fusion.schema.parse_song` in parallel, batched and prefetched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import tensorflow as tf

from genre_fusion.model import EMBEDDINGS_INPUT, LOG_MEL_INPUT, input_names
from genre_fusion.schema import parse_song
from genre_fusion.shards import ShardsError, ShardsMeta, shard_files

AUTOTUNE = tf.data.AUTOTUNE
# Serialized songs held for shuffling: a 30 s log-mel is about 330 kB, so about 340 MB.
SHUFFLE_BUFFER_SONGS = 1024
# Shard files read at once; each shard holds songs in random order already.
INTERLEAVE_FILES = 8
FLOAT_INPUTS = (LOG_MEL_INPUT, EMBEDDINGS_INPUT)  # stored as float16, fed as float32


def make_dataset(
    shards_dir: str | Path,
    split: str,
    meta: ShardsMeta,
    modalities: Sequence[str],
    batch_size: int,
    *,
    training: bool,
    seed: int = 0,
) -> tf.data.Dataset:
    """Batches of `(inputs, targets)` from the `split` shards of `shards_dir`.

    `inputs` holds the model inputs of `modalities` (see `genre_fusion.model`): ``log_mel`` float32
    [batch, mel_bins, frames]; ``words`` string [batch] or ``embeddings`` float32 [batch,
    max_tokens, width] and ``tokens`` int32 [batch]. `targets` is float32 [batch, genres]: one-hot
    (label mode ``single``) or multi-hot (``multi``). With `training`, files and songs are shuffled,
    reproducibly from `seed`, in a new order each epoch. The last batch may be smaller.
    Raises `ShardsError` when the split has no songs.
    """
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

    dataset = tf.data.Dataset.from_tensor_slices(files)
    if training:
        dataset = dataset.shuffle(len(files), seed=seed)
    dataset = dataset.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), INTERLEAVE_FILES),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    if training:
        dataset = dataset.shuffle(min(songs, SHUFFLE_BUFFER_SONGS), seed=seed)
    dataset = dataset.map(to_example, num_parallel_calls=AUTOTUNE)
    dataset = dataset.batch(batch_size, num_parallel_calls=AUTOTUNE)
    # Interleaving hides the length; stating it gives Keras its epoch length (progress bars) and
    # fails loudly if the files hold other songs than meta.json counts.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(math.ceil(songs / batch_size)))
    return dataset.prefetch(AUTOTUNE)
