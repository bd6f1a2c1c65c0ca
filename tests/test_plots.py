"""Evaluation figures: valid PNGs, and training curves that survive a resumed run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from genre_fusion.evaluation.metrics import evaluate_predictions
from genre_fusion.evaluation.plots import (
    load_history,
    plot_confusion_matrix,
    plot_per_genre_f1,
    plot_training_curves,
)

GENRES = ("rock", "pop", "electronic", "hip hop", "jazz")
CONFUSION = np.array(
    [
        [40, 5, 3, 1, 1],
        [6, 30, 8, 4, 2],
        [2, 7, 25, 5, 1],
        [1, 3, 4, 12, 0],
        [0, 0, 0, 0, 0],  # jazz: no song in the split
    ]
)

# A run stopped after epoch 3, resumed from its epoch-1 checkpoint: epochs 2 and 3 repeat.
RESUMED_HISTORY = """epoch,accuracy,learning_rate,loss,val_accuracy,val_loss
0,0.30,0.001,1.90,0.32,1.80
1,0.40,0.001,1.60,0.41,1.55
2,0.45,0.001,1.50,0.43,1.52
3,0.47,0.001,1.45,0.42,1.56
2,0.50,0.0005,1.40,0.48,1.40
3,0.55,0.0005,1.30,0.50,1.35
4,0.58,0.00025,1.20,0.51,1.33
"""
MIN_PNG_PIXELS = 300  # both sides; a real figure at DPI 120 is several hundred pixels


def assert_png(path: Path) -> None:
    assert path.exists()
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert min(image.shape[:2]) >= MIN_PNG_PIXELS
    assert image[..., :3].std() > 0.05  # something drawn, not a blank canvas


@pytest.mark.parametrize("normalize", [True, False])
def test_confusion_matrix_png(tmp_path, normalize):
    path = plot_confusion_matrix(CONFUSION, GENRES, tmp_path / "plots" / "confusion.png", normalize=normalize)

    assert path == tmp_path / "plots" / "confusion.png"
    assert_png(path)


def test_confusion_matrix_many_genres_skips_counts(tmp_path):
    genres = [f"genre {index}" for index in range(30)]
    matrix = np.random.default_rng(0).integers(0, 20, size=(30, 30))

    assert_png(plot_confusion_matrix(matrix, genres, tmp_path / "confusion.png"))


def test_confusion_matrix_rejects_mismatch(tmp_path):
    with pytest.raises(ValueError, match="does not match 4 genres"):
        plot_confusion_matrix(CONFUSION, GENRES[:4], tmp_path / "confusion.png")


def test_history_keeps_last_row_of_repeated_epochs(tmp_path):
    csv = tmp_path / "history.csv"
    csv.write_text(RESUMED_HISTORY)

    history = load_history(csv)

    assert history["epoch"].tolist() == [0, 1, 2, 3, 4]
    assert history["loss"].tolist() == [1.90, 1.60, 1.40, 1.30, 1.20]
    assert_png(plot_training_curves(csv, tmp_path / "curves.png"))


def test_history_drops_epochs_of_the_interrupted_run_that_the_resumed_one_never_reached(tmp_path):
    csv = tmp_path / "history.csv"
    # Ran to epoch 4, resumed from epoch 1's checkpoint, stopped early after epoch 2.
    csv.write_text("epoch,loss\n0,0.9\n1,0.8\n2,0.7\n3,0.6\n4,0.5\n2,0.75\n")

    history = load_history(csv)

    assert history["epoch"].tolist() == [0, 1, 2]
    assert history["loss"].tolist() == [0.9, 0.8, 0.75]


def test_training_curves_without_validation_columns(tmp_path):
    csv = tmp_path / "history.csv"
    csv.write_text("epoch,auc,loss\n0,0.61,0.40\n1,0.70,0.35\n2,0.74,0.31\n")

    assert_png(plot_training_curves(csv, tmp_path / "curves.png"))


def test_training_curves_single_epoch(tmp_path):
    csv = tmp_path / "history.csv"
    csv.write_text("epoch,loss,val_loss\n0,0.9,1.0\n")

    assert_png(plot_training_curves(csv, tmp_path / "curves.png"))


@pytest.mark.parametrize(
    ("content", "message"),
    [("loss,val_loss\n0.9,1.0\n", "no 'epoch' column"), ("epoch,loss\n", "no epoch yet")],
)
def test_history_rejects_non_history(tmp_path, content, message):
    csv = tmp_path / "history.csv"
    csv.write_text(content)

    with pytest.raises(ValueError, match=message):
        plot_training_curves(csv, tmp_path / "curves.png")


@pytest.mark.parametrize("label_mode", ["single", "multi"])
def test_per_genre_f1_png(tmp_path, label_mode):
    rng = np.random.default_rng(1)
    songs = 60
    true = rng.integers(0, len(GENRES) - 1, size=songs)  # jazz never occurs
    targets = np.eye(len(GENRES), dtype=int)[true]
    if label_mode == "multi":
        targets[rng.random(songs) < 0.3, 1] = 1
    probabilities = np.clip(0.6 * targets + 0.5 * rng.random(targets.shape), 0, 1)
    if label_mode == "single":
        probabilities /= probabilities.sum(axis=1, keepdims=True)
    metrics = evaluate_predictions(probabilities, targets, GENRES, label_mode)

    assert_png(plot_per_genre_f1(metrics, tmp_path / "f1.png"))
