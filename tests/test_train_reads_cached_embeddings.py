"""Training on hub-encoder shards reads the cached embeddings: the text encoder never runs."""

import json

import pytest
import tensorflow_hub as hub

from genre_fusion import train
from genre_fusion.encoders import text as text_encoders
from genre_fusion.runs.loading import read_run_summary

pytest_plugins = ["tests.training_fixtures"]
pytestmark = pytest.mark.e2e


def test_training_never_loads_or_runs_the_text_encoder(hub_shards, tiny_model, tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the text encoder ran during training")

    monkeypatch.setattr(hub, "load", forbidden)
    monkeypatch.setattr(text_encoders, "load_module", forbidden)
    monkeypatch.setattr(text_encoders.HubTextEncoder, "embed", forbidden)
    hparams = tmp_path / "tiny.json"
    hparams.write_text(json.dumps(tiny_model.to_dict()))
    run = tmp_path / "run"

    assert (
        train.main(["--data", str(hub_shards), "--run", str(run), "--epochs", "1", "--hparams", str(hparams)])
        == 0
    )
    assert read_run_summary(run)["finished"]
