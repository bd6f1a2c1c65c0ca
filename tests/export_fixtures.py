"""Shared fixtures of the export and predict tests: two models trained and exported once per session.

A test module uses them with ``pytest_plugins = ["tests.export_fixtures"]``: registered as a
plugin, `trained_exports` is built once for all the modules that ask for it.

Fixtures: `trained_exports` (an 80-song demo collection, shards with the learned text encoder and
with the TF1 stand-in of ELMo (reference variables, like ELMo itself), a one-epoch run of a small
model on each, and their exports) and `encoder` (each text encoder, "learned" and "hub", in turn).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from data_prep.build_config import BuildConfig
from data_prep.builder import build_shards
from data_prep.synth import write_demo_collection
from genre_fusion.features.config import FeatureConfig
from genre_fusion.serving import export
from genre_fusion.training.cli import main as train_main
from tests import hub_standins

ENCODERS = ("learned", "hub")
KINDS = ("shards", "run", "model")  # folder name prefixes, in the order of TrainedExports' fields
GENRES = 4
FEATURES = FeatureConfig(clip_seconds=2.0, mel_bins=32)
SMALL_MODEL = [
    "--epochs", "1", "--batch-size", "16", "--conv-blocks", "2", "--conv-filters", "4", "--lstm-layers", "1",
    "--lstm-units", "8", "--dense-units", "8", "--vocabulary-size", "300", "--embedding-dim", "8",
]  # fmt: skip
TOP_K = 3


@dataclass(frozen=True)
class TrainedExports:
    """Paths by text encoder ("learned", "hub"): shards, runs, and exports; and what made them:
    `features` (the learned encoder's; the hub shards' name the stand-in too), `genre_count`
    genres in the collection, the exports' `top_k`."""

    collection: Path
    standin: Path
    shards: dict[str, Path]
    runs: dict[str, Path]
    models: dict[str, Path]
    features: FeatureConfig
    genre_count: int
    top_k: int


@pytest.fixture(scope="session")
def trained_exports(tmp_path_factory) -> TrainedExports:
    root = tmp_path_factory.mktemp("trained_exports")
    collection = root / "music4all"
    write_demo_collection(collection, songs=80, genres=GENRES, seconds=2.0, progress=False)
    standin = hub_standins.build_tf1_standin(root / "elmo_standin")
    features = {"learned": FEATURES, "hub": replace(FEATURES, text_encoder=str(standin))}
    shards, runs, models = ({encoder: root / f"{kind}_{encoder}" for encoder in ENCODERS} for kind in KINDS)
    for encoder in ENCODERS:
        config = BuildConfig(out=str(shards[encoder]), music4all=str(collection), features=features[encoder])
        build_shards(config, workers=2, progress=False)
        assert train_main(["--data", str(shards[encoder]), "--run", str(runs[encoder]), *SMALL_MODEL]) == 0
        top_k = ["--top-k", str(TOP_K)]
        assert export.main(["--run", str(runs[encoder]), "--out", str(models[encoder]), *top_k]) == 0
    return TrainedExports(collection, standin, shards, runs, models, FEATURES, GENRES, TOP_K)


@pytest.fixture(params=ENCODERS)
def encoder(request) -> str:
    """A text encoder of `trained_exports`: the key of its shards, run and model."""
    return request.param
