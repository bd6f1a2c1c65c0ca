"""Training takes the normalisation and vocabulary that `data_prep build` counted: it never reads
the training split to adapt, and shards built before the statistics existed still train."""

import json
import shutil

import keras
import numpy as np
import pytest

from genre_fusion import train
from genre_fusion.data.train_statistics import STATISTICS_FILE, VOCABULARY_FILE, read_statistics
from genre_fusion.runs.layout import MODEL_FILE
from genre_fusion.runs.loading import read_run_summary
from genre_fusion.training import recipe

pytest_plugins = ["tests.training_fixtures"]
pytestmark = pytest.mark.e2e


def _train_one_epoch(shards, tiny_model, tmp_path) -> keras.Model:
    hparams = tmp_path / "tiny.json"
    hparams.write_text(json.dumps(tiny_model.to_dict()))
    run = tmp_path / "run"
    arguments = ["--data", str(shards), "--run", str(run), "--epochs", "1", "--hparams", str(hparams)]
    assert train.main(arguments) == 0
    assert read_run_summary(run)["finished"]
    return keras.models.load_model(run / MODEL_FILE)


def _adapted(model: keras.Model):
    normalization = model.get_layer("audio_encoder").get_layer("log_mel_normalization")
    vocabulary = model.get_layer("lyrics_encoder").get_layer("words_vectorization").get_vocabulary()
    return np.ravel(normalization.mean), np.ravel(normalization.variance), vocabulary


def test_training_uses_the_counted_statistics_without_reading_the_split(
    learned_shards, tiny_model, tmp_path, monkeypatch
):
    def forbidden(*args, **kwargs):
        raise AssertionError("training read the shards to count their statistics")

    monkeypatch.setattr(recipe, "make_dataset", forbidden)
    model = _train_one_epoch(learned_shards, tiny_model, tmp_path)

    statistics = read_statistics(learned_shards)
    mean, variance, vocabulary = _adapted(model)
    np.testing.assert_allclose(mean, statistics.mean, rtol=1e-6)
    np.testing.assert_allclose(variance, statistics.variance, rtol=1e-6)
    assert vocabulary[2:] == statistics.vocabulary(tiny_model.vocabulary_size)
    assert vocabulary[:2] == ["", "[UNK]"]


def test_shards_without_statistics_are_counted_once_with_a_note(learned_shards, tiny_model, tmp_path, capsys):
    legacy = tmp_path / "legacy_shards"
    shutil.copytree(learned_shards, legacy)
    (legacy / STATISTICS_FILE).unlink()
    (legacy / VOCABULARY_FILE).unlink()

    model = _train_one_epoch(legacy, tiny_model, tmp_path)

    assert "holds no training statistics" in capsys.readouterr().err
    statistics = read_statistics(learned_shards)
    mean, variance, vocabulary = _adapted(model)
    np.testing.assert_allclose(mean, statistics.mean, rtol=1e-5)
    np.testing.assert_allclose(variance, statistics.variance, rtol=1e-4)
    assert vocabulary[2:] == statistics.vocabulary(tiny_model.vocabulary_size)
