"""`python -m genre_fusion.evaluate` on a run trained on tiny shards."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from genre_fusion import train
from genre_fusion.data.shards import read_meta, shard_files
from genre_fusion.evaluation import evaluate
from genre_fusion.evaluation.evaluate import predict_split
from genre_fusion.evaluation.metrics import evaluate_predictions
from genre_fusion.evaluation.thresholds import choose_thresholds
from genre_fusion.files.owned_outputs import MARKER_FILE, foreign_entries, owned_outputs, record_outputs
from genre_fusion.runs.layout import MODEL_FILE, RUN_ARTIFACTS

pytest_plugins = ["tests.training_fixtures"]
pytestmark = pytest.mark.e2e


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


def test_the_evaluation_is_recorded_as_the_runs_own(trained_run: Path):
    assert evaluate.main(["--run", str(trained_run), "--split", "val"]) == 0
    kind, names = owned_outputs(trained_run)
    assert kind == "run" and {"evaluation", "training_curves.png"} <= names
    assert foreign_entries(trained_run, "run") == []  # so `train --overwrite` may replace the run


def test_a_run_trained_before_the_record_gets_one_listing_its_training_files(trained_run: Path, tmp_path):
    run = shutil.copytree(trained_run, tmp_path / "run")
    (run / MARKER_FILE).unlink(missing_ok=True)
    shutil.rmtree(run / "evaluation", ignore_errors=True)
    assert evaluate.main(["--run", str(run), "--split", "val"]) == 0
    kind, names = owned_outputs(run)
    trained = {name for name in RUN_ARTIFACTS if (run / name).exists()}
    assert kind == "run" and names >= {"evaluation", *trained} and "config.json" in trained
    assert foreign_entries(run, "run") == []


def test_a_users_file_where_the_evaluation_goes_is_kept_and_not_adopted(trained_run: Path, tmp_path, capsys):
    run = shutil.copytree(trained_run, tmp_path / "run")
    shutil.rmtree(run / "evaluation", ignore_errors=True)
    (run / MARKER_FILE).unlink(missing_ok=True)
    record_outputs(run, "run", [path.name for path in run.iterdir()])  # as training records its files
    (run / "evaluation").write_text("my notes")
    assert evaluate.main(["--run", str(run), "--split", "val"]) == 2
    assert "evaluation, which genre_fusion did not write" in capsys.readouterr().err
    assert (run / "evaluation").read_text() == "my notes" and "evaluation" not in owned_outputs(run)[1]


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _flipped(data: bytes) -> bytes:
    return data[:20] + bytes([data[20] ^ 1]) + data[21:]


@pytest.mark.parametrize(
    ("damage", "reason"), [(_truncated, "truncated record"), (_flipped, "corrupted record")]
)
def test_a_damaged_shard_is_named(trained_run: Path, learned_shards: Path, tmp_path, capsys, damage, reason):
    shards = shutil.copytree(learned_shards, tmp_path / "shards")
    damaged = shard_files(shards, "val")[-1]
    damaged.write_bytes(damage(damaged.read_bytes()))
    assert evaluate.main(["--run", str(trained_run), "--data", str(shards), "--split", "val"]) == 2
    err = capsys.readouterr().err
    assert f"shard {damaged} is damaged ({reason}" in err and "python -m data_prep build" in err


def _copied_run(trained_run: Path, tmp_path: Path) -> Path:
    return shutil.copytree(trained_run, tmp_path / "run")


def _damaged_model(trained_run: Path, tmp_path: Path) -> Path:
    run = _copied_run(trained_run, tmp_path)
    (run / MODEL_FILE).write_bytes(b"PK\x03\x04 not a whole zip")
    return run


def _unwritable_evaluation(trained_run: Path, tmp_path: Path) -> Path:
    run = _copied_run(trained_run, tmp_path)
    shutil.rmtree(run / "evaluation", ignore_errors=True)
    (run / MARKER_FILE).unlink(missing_ok=True)
    (run / "evaluation").mkdir()
    (run / "evaluation" / "val").write_text("a file where the split's folder goes")
    return run


def _a_file(trained_run: Path, tmp_path: Path) -> Path:
    (tmp_path / "run.txt").write_text("not a run")
    return tmp_path / "run.txt"


def _not_a_run(trained_run: Path, tmp_path: Path) -> Path:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    return tmp_path / "photos"


@pytest.mark.parametrize(
    ("make_run", "message"),
    [
        (_a_file, "run.txt is not a run directory"),
        (_not_a_run, "photos is not a run directory"),
        (_damaged_model, "cannot be loaded as a Keras model"),
        (_unwritable_evaluation, "cannot write the evaluation into"),
    ],
)
def test_a_run_that_cannot_be_evaluated_exits_2(trained_run: Path, tmp_path, capsys, make_run, message):
    run = make_run(trained_run, tmp_path)
    assert evaluate.main(["--run", str(run), "--split", "val"]) == 2
    last_line = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    assert last_line.startswith("error: ") and message in last_line


def test_bad_options_exit_2_naming_the_option(trained_run: Path, capsys):
    for argv, message in (
        (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        (["--batch", "8"], "unrecognized arguments: --batch 8"),  # no abbreviations
    ):
        with pytest.raises(SystemExit) as exited:
            evaluate.main(["--run", str(trained_run), *argv])
        assert exited.value.code == 2 and message in capsys.readouterr().err


def test_a_multi_label_run_is_scored_at_thresholds_chosen_on_val(
    multi_label_shards, tiny_model, tmp_path: Path, capsys
):
    hparams = tmp_path / "tiny.json"
    hparams.write_text(json.dumps(tiny_model.to_dict()))
    run = tmp_path / "run"
    args = ["--data", str(multi_label_shards), "--run", str(run), "--epochs", "2", "--hparams", str(hparams)]
    assert train.main(args) == 0
    assert evaluate.main(["--run", str(run), "--split", "test"]) == 0
    assert "(chosen on val)" in capsys.readouterr().out
    metrics = json.loads((run / "evaluation" / "test" / "metrics.json").read_text())

    val_probabilities, val_targets, config = predict_split(run, "val")
    chosen = choose_thresholds(val_probabilities, val_targets)
    assert metrics["thresholds"]["chosen_on"] == "val"
    assert metrics["thresholds"]["global"] == chosen.global_threshold == metrics["threshold"]
    assert list(metrics["thresholds"]["per_genre"].values()) == pytest.approx(chosen.per_genre)
    test_probabilities, test_targets, _ = predict_split(run, "test")
    scored = {
        threshold: evaluate_predictions(test_probabilities, test_targets, config.genres, "multi", threshold)
        for threshold in (chosen.global_threshold, 0.5)
    }
    at_global, at_half = scored[chosen.global_threshold], scored[0.5]
    for key in ("example_accuracy", "example_f1", "subset_accuracy", "micro_f1"):
        assert metrics[key] == pytest.approx(at_global[key])
        assert metrics["at_threshold_0.5"][key] == pytest.approx(at_half[key])
    thresholds = chosen.per_genre
    per_genre = evaluate_predictions(test_probabilities, test_targets, config.genres, "multi", thresholds)
    for key in ("example_accuracy", "example_f1"):
        assert metrics["with_per_genre_thresholds"][key] == pytest.approx(per_genre[key])
