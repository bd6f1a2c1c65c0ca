"""Shared fixtures of the model and training tests: tiny shards, built once per test session.

A test module uses them with ``pytest_plugins = ["tests.training_fixtures"]``: registered as a
plugin, each session fixture is built once for all the modules that ask for it.

Fixtures: `tiny_model` (a `ModelConfig` that trains in seconds), `demo_collection` (the demo
generator's collection: 4 genres, audio styles pairing rock-metal and pop-electronic, lyric topics
pairing rock-electronic and metal-pop; 48 songs of 2 s), and its shards, 32 mel bins, at most 64
principal words (`demo_features`), split 60/20/20 by artist: `learned_shards`, `hub_shards`
(embeddings of a local ELMo stand-in) and `multi_label_shards`; `build_demo_shards` builds others.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path

import pytest

from data_prep.build_config import BuildConfig
from data_prep.builder import build_shards
from data_prep.synth import write_demo_collection
from genre_fusion.features.config import FeatureConfig
from genre_fusion.model.config import ModelConfig
from tests import hub_standins

SONGS = 48
GENRES = 4
SECONDS = 2.0
# 48 songs come from about 9 artists: too few for 10 artist folds (0.8, 0.1, 0.1).
SPLIT = (0.6, 0.2, 0.2)
FEATURES = FeatureConfig(clip_seconds=SECONDS, mel_bins=32, max_tokens=64)
# Small enough to train in seconds on two cores, large enough to learn the tiny set.
TINY_MODEL = ModelConfig(
    conv_blocks=2,
    conv_filters=8,
    lstm_layers=1,
    lstm_units=8,
    dense_units=16,
    embedding_dim=8,
    vocabulary_size=500,
    dropout=0.1,
    learning_rate=1e-2,
)


def _build(collection: Path, out: Path, features: FeatureConfig, label_mode: str = "single") -> Path:
    config = BuildConfig(
        out=str(out), music4all=str(collection), features=features, label_mode=label_mode, split=SPLIT
    )
    build_shards(config, workers=2, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_model() -> ModelConfig:
    return TINY_MODEL


@pytest.fixture(scope="session")
def demo_features() -> FeatureConfig:
    return FEATURES


@pytest.fixture(scope="session")
def demo_collection(tmp_path_factory) -> Path:
    """The demo generator's collection in Music4All's layout."""
    folder = tmp_path_factory.mktemp("collection")
    write_demo_collection(folder, songs=SONGS, genres=GENRES, seconds=SECONDS, progress=False)
    return folder


@pytest.fixture(scope="session")
def build_demo_shards(demo_collection) -> Callable[..., Path]:
    """`build_demo_shards(out, features, label_mode="single")`: shards of `demo_collection` in `out`
    with other features, split as the session's shards; returns `out`."""
    return functools.partial(_build, demo_collection)


@pytest.fixture(scope="session")
def learned_shards(demo_collection, tmp_path_factory) -> Path:
    """Shards with principal-word text only (the model's learned text encoder)."""
    return _build(demo_collection, tmp_path_factory.mktemp("learned_shards"), FEATURES)


@pytest.fixture(scope="session")
def hub_shards(demo_collection, tmp_path_factory) -> Path:
    """Shards with cached token embeddings of a local TF2 stand-in of ELMo (width 16)."""
    standin = hub_standins.build_tf2_standin(tmp_path_factory.mktemp("standin") / "module")
    features = dataclasses.replace(FEATURES, text_encoder=str(standin))
    return _build(demo_collection, tmp_path_factory.mktemp("hub_shards"), features)


@pytest.fixture(scope="session")
def multi_label_shards(demo_collection, tmp_path_factory) -> Path:
    """Multi-label shards (every listed genre of a song is a target), learned text encoder."""
    return _build(demo_collection, tmp_path_factory.mktemp("multi_label_shards"), FEATURES, "multi")
