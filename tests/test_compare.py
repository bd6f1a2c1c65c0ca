"""`python -m genre_fusion.compare`: seeds, bootstrap intervals, tables, and a paper's figures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genre_fusion.comparison.cli import main as compare_main
from genre_fusion.comparison.models import parse_models
from genre_fusion.comparison.song_scores import SongScores, seed_mean_interval
from genre_fusion.evaluation.metrics import evaluate_predictions

pytest_plugins = ["tests.training_fixtures"]


def _single_label(rng, songs: int, genres: int, skill: float) -> tuple[np.ndarray, np.ndarray]:
    """Softmax-like rows and one-hot targets [songs, genres]; the true genre tops a row at rate `skill`."""
    true = rng.integers(0, genres, songs)
    probabilities = rng.random((songs, genres))
    hit = rng.random(songs) < skill
    probabilities[np.arange(songs), true] += np.where(hit, 1.0, 0.0)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return probabilities, np.eye(genres, dtype=int)[true]


def test_song_scores_equal_the_evaluation_on_every_song():
    rng = np.random.default_rng(0)
    probabilities, targets = _single_label(rng, 200, 6, 0.5)
    single = SongScores.of(probabilities, targets, "single").scores(np.ones(200))
    expected = evaluate_predictions(probabilities, targets, [str(g) for g in range(6)], "single")
    for name in ("accuracy", "macro_f1"):
        assert single[name][0] == pytest.approx(expected[name])

    targets = (rng.random((150, 5)) < 0.3).astype(int)
    targets[targets.sum(axis=1) == 0, 0] = 1
    probabilities = np.clip(targets * 0.5 + rng.random((150, 5)) * 0.6, 0, 1)
    for threshold in (0.5, np.array([0.3, 0.4, 0.5, 0.6, 0.7])):
        multi = SongScores.of(probabilities, targets, "multi", threshold).scores(np.ones(150))
        expected = evaluate_predictions(probabilities, targets, list("abcde"), "multi", threshold)
        for name in ("example_accuracy", "example_f1", "micro_f1", "macro_f1"):
            assert multi[name][0] == pytest.approx(expected[name])


def test_bootstrap_interval_has_the_width_test_sampling_gives():
    rng = np.random.default_rng(1)
    widths = {}
    for songs in (100, 1600):
        runs = [SongScores.of(*_single_label(rng, songs, 4, 0.6), "single") for _ in range(2)]
        accuracy = np.mean([run.scores(np.ones(songs))["accuracy"][0] for run in runs])
        low, high = seed_mean_interval(runs, resamples=2000, seed=0)["accuracy"]
        assert low < accuracy < high
        widths[songs] = high - low
        # Two seeds' mean on the same songs: at most the binomial width of one run, 2 x 1.96 sd.
        assert widths[songs] < 2 * 1.96 * np.sqrt(accuracy * (1 - accuracy) / songs) * 1.15
    assert widths[1600] == pytest.approx(widths[100] / 4, rel=0.35)  # 16x the songs: a quarter


def test_unknown_models_are_named():
    assert [model.label for model in parse_models("audio,gated")] == ["audio only", "fused (gated)"]
    with pytest.raises(ValueError, match="unknown fusion-x; choose from audio, lyrics, concat"):
        parse_models("audio,fusion-x")


@pytest.fixture(scope="module")
def tiny_hparams(tiny_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hparams") / "tiny.json"
    path.write_text(json.dumps(tiny_model.to_dict()))
    return path


@pytest.mark.e2e
def test_compare_trains_each_model_per_seed_and_resumes(learned_shards, tiny_hparams, tmp_path, capsys):
    out = tmp_path / "comparison"
    args = ["--data", str(learned_shards), "--out", str(out), "--models", "audio,concat", "--seeds", "2"]
    args += ["--epochs", "1", "--bootstrap", "200", "--hparams", str(tiny_hparams)]
    assert compare_main(args) == 0
    printed = capsys.readouterr().out
    assert "| audio only | 2 |" in printed and "| fused (concat) | 2 |" in printed

    results = pd.read_csv(out / "results.csv")
    assert list(zip(results["model"], results["seed"], strict=True)) == [
        ("audio", 0), ("audio", 1), ("concat", 0), ("concat", 1),
    ]  # fmt: skip
    summary = pd.read_csv(out / "summary.csv")
    for model, runs in results.groupby("model"):
        row = summary[(summary["model"] == model) & (summary["score"] == "accuracy")].iloc[0]
        assert row["mean"] == pytest.approx(runs["accuracy"].mean(), abs=1e-6)
        assert row["sd"] == pytest.approx(runs["accuracy"].std(ddof=1), abs=1e-6)
        assert row["ci_low"] <= row["mean"] <= row["ci_high"]
    # Each run's accuracy is what evaluate reports for it.
    from genre_fusion.evaluation.evaluate import evaluate_run

    assert evaluate_run(out / "runs" / "concat-seed1", "test")["accuracy"] == pytest.approx(
        results.loc[3, "accuracy"], abs=1e-6
    )
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "mean ± sd over seeds" in (out / "summary.md").read_text()

    model_file = out / "runs" / "audio-seed0" / "model.keras"
    stamp = model_file.stat().st_mtime_ns
    assert compare_main(args) == 0  # the same command again: every run is kept
    again = capsys.readouterr().out
    assert again.count("finished earlier, kept") == 4 and "training audio" not in again
    assert model_file.stat().st_mtime_ns == stamp

    assert compare_main([*args, "--batch-size", "8"]) == 2  # runs of other settings
    assert "other settings (train_flags" in capsys.readouterr().err
    # Another seed only adds runs; the tables then hold the three.
    assert compare_main([*args, "--seeds", "3"]) == 0  # the last --seeds counts
    assert "training audio" in capsys.readouterr().out
    assert list(pd.read_csv(out / "results.csv")["seed"]) == [0, 1, 2, 0, 1, 2]
    assert model_file.stat().st_mtime_ns == stamp


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--fusion", "gated"], "the comparison sets these"),
        (["--models", "audio,fusion-x"], "unknown fusion-x"),
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--model", "audio"], "unknown option --model: neither the comparison's"),
    ],
)
def test_bad_options_stop_before_any_training(learned_shards, tmp_path, capsys, extra, message):
    out = tmp_path / "comparison"
    try:
        code = compare_main(["--data", str(learned_shards), "--out", str(out), *extra])
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    assert code == 2 and message in capsys.readouterr().err
    assert not (out / "runs").exists()


@pytest.mark.e2e
def test_a_folder_of_other_files_is_refused(learned_shards, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert compare_main(["--data", str(learned_shards), "--out", str(out)]) == 2
    assert "notes.txt" in capsys.readouterr().err and (out / "notes.txt").is_file()


@pytest.mark.e2e
def test_shards_of_a_protocol_show_the_papers_figures(multi_label_shards, tiny_hparams, tmp_path, capsys):
    shards = Path(shutil.copytree(multi_label_shards, tmp_path / "shards"))
    meta = json.loads((shards / "meta.json").read_text())
    # As `data_prep build --protocol ru2023` records it.
    (shards / "meta.json").write_text(json.dumps(meta | {"protocol": "ru2023"}))
    out = tmp_path / "comparison"
    args = ["--data", str(shards), "--out", str(out), "--models", "concat", "--seeds", "1", "--epochs", "1"]
    assert compare_main([*args, "--bootstrap", "100", "--hparams", str(tiny_hparams)]) == 0
    table = (out / "summary.md").read_text()
    assert "protocol ru2023 (Ru et al., ICASSP 2023)" in table
    assert "Ru et al., ICASSP 2023: example-based accuracy" in table and "| 0.456 | 0.534 |" in table
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["score"]) == {"example_accuracy", "example_f1", "micro_f1", "macro_f1"}
    assert summary.loc[summary["score"] == "example_accuracy", "reported"].iloc[0] == 0.456
