"""`python -m genre_fusion.evaluate` on a run trained on tiny shards."""

import json
from pathlib import Path

import numpy as np
import pytest

from genre_fusion import evaluate, train
from genre_fusion.evaluate import predict_split
from genre_fusion.metrics import evaluate_predictions
from genre_fusion.shards import read_meta

pytest_plugins = ["tests.training_fixtures"]


@pytest.fixture(scope="module")
def trained_run(learned_shards, tiny_model, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("evaluate")
    hparams = folder / "tiny.json"
    hparams.write_text(json.dumps(tiny_model.to_dict()))
    run = folder / "run"
    assert (
        train.main(
            ["--data", str(learned_shards), "--run", str(run), "--epochs", "2", "--hparams", str(hparams)]
        )
        == 0
    )
    return run


def test_writes_metrics_and_plots_that_match_the_predictions(trained_run: Path, capsys):
    assert evaluate.main(["--run", str(trained_run), "--split", "val"]) == 0
    printed = capsys.readouterr().out
    out = trained_run / "evaluation" / "val"
    metrics = json.loads((out / "metrics.json").read_text())

    probabilities, targets, config = predict_split(trained_run, "val")
    meta = read_meta(config.data)
    assert probabilities.shape == targets.shape == (meta.split_sizes["val"], len(meta.genres))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    expected = evaluate_predictions(probabilities, targets, config.genres, "single")
    assert metrics["accuracy"] == pytest.approx(expected["accuracy"])
    assert metrics["songs"] == meta.split_sizes["val"] and metrics["split"] == "val"
    assert set(metrics["per_genre"]) == set(meta.genres)
    for genre in meta.genres:
        assert genre in printed
    for image in (
        out / "confusion_matrix.png",
        out / "per_genre_f1.png",
        trained_run / "training_curves.png",
    ):
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_runs_stop_with_a_message(trained_run: Path, tmp_path: Path, capsys):
    assert evaluate.main(["--run", str(tmp_path / "nothing")]) == 2
    assert "config.json is missing" in capsys.readouterr().err
    assert evaluate.main(["--run", str(trained_run), "--data", str(tmp_path / "elsewhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
