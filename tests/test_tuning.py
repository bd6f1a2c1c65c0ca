"""`python -m tuning`: a tiny random search over tiny shards, its files, resuming, failing trials,
and the training recipe it shares with `genre_fusion.train`."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import fields
from pathlib import Path

import keras_tuner as kt
import numpy as np
import pandas as pd
import pytest

import genre_fusion.model.builder
import tuning.hypermodel
from genre_fusion import train
from genre_fusion.data.pipeline import make_dataset
from genre_fusion.data.shards import read_meta
from genre_fusion.data.train_statistics import read_statistics
from genre_fusion.evaluation.metrics import evaluate_predictions
from genre_fusion.model.config import ModelConfig
from genre_fusion.runs.layout import CONFIG_FILE
from genre_fusion.runs.loading import read_run_summary
from tuning.__main__ import main
from tuning.hypermodel import GenreHyperModel, TrialTraining
from tuning.report import BEST_HPARAMS_FILE, LEADERBOARD_FILE, OBJECTIVE_PLOT_FILE
from tuning.search import PROJECT_NAME
from tuning.space import SearchSpace

TRIALS = 2

pytest_plugins = ["tests.training_fixtures"]  # `learned_shards`: tiny shards built once per session


def _search(shards: Path, out: Path, *extra: str) -> int:
    return main(
        ["--data", str(shards), "--out", str(out), "--tuner", "random", "--max-trials", str(TRIALS)]
        + ["--epochs", "1", *extra]
    )


def _trial_dirs(out: Path) -> list[Path]:
    return sorted((out / PROJECT_NAME).glob("trial_*"))


@pytest.mark.e2e
def test_search_writes_best_hparams_that_train_applies_and_resumes(
    learned_shards, tmp_path, monkeypatch, capsys
):
    # The HyperModel's builder is the training builder itself; count its calls.
    assert tuning.hypermodel.build_model is genre_fusion.model.builder.build_model
    built = []

    def counting_build_model(config, meta, statistics=None):
        built.append(config)
        return genre_fusion.model.builder.build_model(config, meta, statistics)

    monkeypatch.setattr(tuning.hypermodel, "build_model", counting_build_model)
    out = tmp_path / "search"
    assert _search(learned_shards, out) == 0
    printed = capsys.readouterr().out
    # Ranked as training selects its best epoch: by validation loss, lowest first.
    assert "val_loss" in printed and "best val_loss" in printed
    assert len(built) >= TRIALS  # Keras Tuner also builds once to learn the space

    table = pd.read_csv(out / LEADERBOARD_FILE)
    assert len(table) == TRIALS and (table["status"] == "COMPLETED").all()
    for column in ("trial", "val_loss", "conv_blocks", "lstm_units", "fusion", "learning_rate"):
        assert column in table.columns
    assert table["val_loss"].is_monotonic_increasing  # best first
    assert (out / OBJECTIVE_PLOT_FILE).read_bytes().startswith(b"\x89PNG")

    best = json.loads((out / BEST_HPARAMS_FILE).read_text())
    assert set(best) == {field.name for field in fields(ModelConfig)}
    best_row = table.iloc[0]
    assert best["conv_blocks"] == best_row["conv_blocks"] and best["fusion"] == best_row["fusion"]
    assert best["learning_rate"] == pytest.approx(best_row["learning_rate"])

    run = tmp_path / "run"
    hparams = ["--hparams", str(out / BEST_HPARAMS_FILE), "--epochs", "1"]
    assert train.main(["--data", str(learned_shards), "--run", str(run), *hparams]) == 0
    assert json.loads((run / CONFIG_FILE).read_text())["model"] == best
    # One recipe: training the best trial's settings gives the trial's score.
    assert read_run_summary(run)["best"]["val_loss"] == pytest.approx(best_row["val_loss"], rel=1e-5)

    # The same command again: the search is complete, nothing new is trained.
    trials_before = _trial_dirs(out)
    assert _search(learned_shards, out) == 0
    assert "0 new" in capsys.readouterr().out
    assert _trial_dirs(out) == trials_before
    assert len(pd.read_csv(out / LEADERBOARD_FILE)) == TRIALS

    # More trials continue the same search (argparse keeps the last --max-trials).
    assert _search(learned_shards, out, "--max-trials", str(TRIALS + 1)) == 0
    assert "1 new" in capsys.readouterr().out
    assert len(_trial_dirs(out)) == len(pd.read_csv(out / LEADERBOARD_FILE)) == TRIALS + 1

    # Other settings into the same folder are refused, not mixed into the search.
    assert _search(learned_shards, out, "--seed", "1") == 2
    assert "--overwrite" in capsys.readouterr().err

    # --overwrite removes only what the search wrote: a folder holding anything else is refused.
    (out / "notes.txt").write_text("mine")
    assert _search(learned_shards, out, "--overwrite") == 2
    error = capsys.readouterr().err
    assert "notes.txt" in error and "nothing was removed" in error
    assert len(_trial_dirs(out)) == TRIALS + 1
    (out / "notes.txt").unlink()
    assert _search(learned_shards, out, "--overwrite", "--max-trials", "1") == 0
    assert len(_trial_dirs(out)) == len(pd.read_csv(out / LEADERBOARD_FILE)) == 1


@pytest.mark.e2e
def test_failures_in_some_trials_are_reported(learned_shards, tmp_path, monkeypatch, capsys):
    builds = []

    def every_second_build_breaks(config, meta, statistics=None):
        builds.append(config)
        if len(builds) % 2 == 0:
            raise RuntimeError("deliberately broken model")
        return genre_fusion.model.builder.build_model(config, meta, statistics)

    monkeypatch.setattr(tuning.hypermodel, "build_model", every_second_build_breaks)
    out = tmp_path / "search"
    assert _search(learned_shards, out) == 0
    assert "1 of 2 trials failed" in capsys.readouterr().err
    table = pd.read_csv(out / LEADERBOARD_FILE)
    assert sorted(table["status"]) == ["COMPLETED", "FAILED"]
    failed = table[table["status"] == "FAILED"].iloc[0]
    assert failed["error"] == "RuntimeError: deliberately broken model"
    assert table.iloc[0]["status"] == "COMPLETED"  # the finished trial leads
    assert (out / BEST_HPARAMS_FILE).is_file()


@pytest.mark.e2e
def test_every_trial_failing_fails_the_command(learned_shards, tmp_path, monkeypatch, capsys):
    # Without tensorboard, Keras Tuner 1.4.8 fails every trial and returns from search() normally.
    monkeypatch.setitem(sys.modules, "tensorboard.plugins.hparams", None)
    out = tmp_path / "search"
    assert _search(learned_shards, out) == 1
    error = capsys.readouterr().err
    assert f"all {TRIALS} trials failed" in error and "tensorboard.plugins.hparams" in error
    assert "Traceback" in error
    assert (pd.read_csv(out / LEADERBOARD_FILE)["status"] == "FAILED").all()
    assert not (out / BEST_HPARAMS_FILE).exists()


def test_bad_shards_exit_2(tmp_path, capsys):
    assert _search(tmp_path / "nowhere", tmp_path / "search") == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "unfinished").mkdir()
    assert _search(tmp_path / "unfinished", tmp_path / "search") == 2
    assert "meta.json is missing" in capsys.readouterr().err


def test_space_follows_modalities_and_mel_bins():
    space = SearchSpace()
    hp = kt.HyperParameters()
    assert space.declare(hp, ("audio",), mel_bins=8).modalities == ("audio",)
    conv_blocks = next(parameter for parameter in hp.space if parameter.name == "conv_blocks")
    assert conv_blocks.max_value == 3  # 8 -> 4 -> 2 -> 1 mel bins
    assert "lstm_units" not in hp.values and "fusion" not in hp.values

    hp = kt.HyperParameters()
    space.declare(hp, ("audio", "lyrics"), mel_bins=128)
    assert {"conv_blocks", "lstm_layers", "fusion", "learning_rate"} <= set(hp.values)
    with pytest.raises(ValueError, match="mel bins"):
        space.declare(kt.HyperParameters(), ("audio",), mel_bins=2)


def _hypermodel(shards: Path, epochs: int, class_weights: bool = False) -> GenreHyperModel:
    meta = read_meta(shards)
    modalities = ("audio", "lyrics")
    validation = make_dataset(shards, "val", meta, modalities, 16, training=False)
    training = TrialTraining(
        data=str(shards), batch_size=16, seed=0, epochs=epochs, patience=epochs, class_weights=class_weights
    )
    return GenreHyperModel(meta, modalities, SearchSpace(), read_statistics(shards), validation, training)


@pytest.mark.e2e
def test_multi_label_objective_is_evaluations_mean_average_precision(multi_label_shards):
    hypermodel = _hypermodel(multi_label_shards, epochs=1)
    assert hypermodel.monitor.name == "val_mean_average_precision" and hypermodel.monitor.mode == "max"
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    history = hypermodel.fit(hp, model, epochs=1, verbose=0)
    probabilities = model.predict(hypermodel.validation_data, verbose=0)
    targets = np.concatenate([targets.numpy() for _, targets in hypermodel.validation_data])
    meta = hypermodel.meta
    scores = evaluate_predictions(probabilities, targets, meta.genres, meta.label_mode)
    assert history.history["val_mean_average_precision"][0] == pytest.approx(
        scores["mean_average_precision"], abs=1e-9
    )


@pytest.mark.e2e
def test_trials_train_with_the_training_recipe(learned_shards):
    epochs = 2
    hypermodel = _hypermodel(learned_shards, epochs=epochs, class_weights=True)
    assert hypermodel.monitor.name == "val_macro_f1"  # with class weights, as training selects
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    history = hypermodel.fit(hp, model, epochs=epochs, verbose=0).history
    rate = hp.values["learning_rate"]
    cosine = [rate * 0.5 * (1 + math.cos(math.pi * epoch / epochs)) for epoch in range(epochs)]
    np.testing.assert_allclose(history["learning_rate"], cosine, rtol=1e-6)
    assert len(history["val_macro_f1"]) == epochs


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--epochs", "0"], "--epochs must be an integer >= 1, got 0"),
        (["--seed", "-1"], "--seed must be an integer in [0, 4294967295], got -1"),
        (["--modalities", "audio, video"], "--modalities must be one or both of audio, lyrics"),
    ],
)
def test_bad_options_exit_2(learned_shards, tmp_path, capsys, extra, message):
    assert _search(learned_shards, tmp_path / "search", *extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "search").exists()
