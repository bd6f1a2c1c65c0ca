"""Fixture plugin: shards written straight from `SongRecord`s, as `data_prep build` lays them out.

For tests of what reads shards (the model, the export) that must not depend on the build: one
shard file per split, meta.json and the training split's statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from genre_fusion.data.schema import SongRecord, serialize_song
from genre_fusion.data.shards import SPLITS, ShardsMeta, shard_name
from genre_fusion.data.train_statistics import TrainStatistics
from genre_fusion.features.config import FeatureConfig


def _write_record_shards(
    folder: Path, songs: dict[str, list[SongRecord]], genres: Sequence[str], features: FeatureConfig
) -> Path:
    """`songs` by split (single-label) -> `folder` holding their shards; returns `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, records in songs.items():
        with tf.io.TFRecordWriter(str(folder / shard_name(split, 0, 1))) as writer:
            for song in records:
                writer.write(serialize_song(song))
    train = songs["train"]
    statistics = TrainStatistics()
    statistics.update([song.audio_features for song in train], [song.words for song in train])
    statistics.write(folder, audio_embeddings=features.uses_audio_embeddings)
    ShardsMeta(
        genres=tuple(genres),
        label_mode="single",
        features=features,
        split_sizes={split: len(records) for split, records in songs.items()},
        shard_counts=dict.fromkeys(SPLITS, 1),
        genre_counts={
            split: np.bincount([song.labels[0] for song in records], minlength=len(genres)).tolist()
            for split, records in songs.items()
        },
        source="test",
    ).write(folder)
    return folder


@pytest.fixture(scope="session")
def write_record_shards() -> Callable[..., Path]:
    """The function `(folder, songs by split, genres, features) -> folder` that writes shards."""
    return _write_record_shards
