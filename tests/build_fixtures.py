"""Shared fixtures of the `data_prep build` tests on `manifest_collection` (tests/conftest.py).

A test module uses them with ``pytest_plugins = ["tests.build_fixtures"]``.

Fixtures: `manifest_features` (the features of these builds: 2 s clips, 32 mel bins),
`build_shards_from` (builds or resumes shards of a manifest with them) and `read_split` (the songs
of one split as the shards hold them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import tensorflow as tf

from data_prep.build_config import BuildConfig
from data_prep.builder import BuildSummary, build_shards
from genre_fusion.data.schema import parse_song
from genre_fusion.data.shards import read_meta, shard_files
from genre_fusion.features.config import FeatureConfig

MANIFEST_FEATURES = FeatureConfig(clip_seconds=2.0, mel_bins=32)


def _build_shards_from(manifest: Path | str, out: Path, **settings) -> BuildSummary:
    config = BuildConfig(out=str(out), manifest=str(manifest), features=MANIFEST_FEATURES, **settings)
    return build_shards(config, workers=2, progress=False)


def _read_split(shards: Path, split: str) -> list[dict]:
    meta = read_meta(shards)
    dataset = tf.data.TFRecordDataset([str(f) for f in shard_files(shards, split)])
    return [
        {key: value.numpy() for key, value in parse_song(record, meta.features).items()} for record in dataset
    ]


@pytest.fixture(scope="session")
def manifest_features() -> FeatureConfig:
    return MANIFEST_FEATURES


@pytest.fixture(scope="session")
def build_shards_from() -> Callable[..., BuildSummary]:
    """`build_shards_from(manifest, out, **settings)`: builds, or resumes, shards of `manifest` in `out`
    with `manifest_features` and other `BuildConfig` settings; returns the build's summary."""
    return _build_shards_from


@pytest.fixture(scope="session")
def read_split() -> Callable[[Path, str], list[dict]]:
    """`read_split(shards, split)`: each song of the split, its features as NumPy values."""
    return _read_split
