"""Evaluation metrics against hand-computed cases."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from genre_fusion.evaluation.metrics import evaluate_predictions, format_metrics_table, selection_scores

GENRES = ("a", "b", "c", "d")

# 9 songs, 4 genres. Song: true genre, probabilities, then predicted genre / rank of the true genre.
SINGLE_TRUE = [0, 0, 1, 1, 2, 2, 2, 3, 3]
SINGLE_PROBABILITIES = [
    [0.6, 0.2, 0.1, 0.1],  # a: a, rank 1
    [0.1, 0.2, 0.3, 0.4],  # a: d, rank 4 (the only top-3 miss)
    [0.1, 0.7, 0.1, 0.1],  # b: b
    [0.5, 0.3, 0.1, 0.1],  # b: a, rank 2
    [0.1, 0.1, 0.7, 0.1],  # c: c
    [0.1, 0.1, 0.6, 0.2],  # c: c
    [0.2, 0.1, 0.5, 0.2],  # c: c
    [0.1, 0.1, 0.1, 0.7],  # d: d
    [0.4, 0.1, 0.3, 0.2],  # d: a, rank 3
]
SINGLE_CONFUSION = [
    [1, 0, 0, 1],
    [1, 1, 0, 0],
    [0, 0, 3, 0],
    [1, 0, 0, 1],
]
# Predicted counts a 3, b 1, c 3, d 2 -> precision 1/3, 1, 1, 1/2; recall 1/2, 1/2, 1, 1/2.
SINGLE_F1 = {"a": 2 / 5, "b": 2 / 3, "c": 1.0, "d": 1 / 2}


def one_hot(indices: list[int], genres: int = len(GENRES)) -> np.ndarray:
    return np.eye(genres, dtype=int)[indices]


def test_single_label_hand_computed():
    metrics = evaluate_predictions(np.array(SINGLE_PROBABILITIES), one_hot(SINGLE_TRUE), GENRES, "single")

    assert metrics["label_mode"] == "single"
    assert metrics["songs"] == 9
    assert metrics["genres"] == list(GENRES)
    assert metrics["accuracy"] == pytest.approx(6 / 9)
    assert metrics["top_k"] == 3
    assert metrics["top_k_accuracy"] == pytest.approx(8 / 9)
    assert metrics["macro_f1"] == pytest.approx(77 / 120)
    assert metrics["weighted_f1"] == pytest.approx(92 / 135)
    assert metrics["confusion_matrix"] == SINGLE_CONFUSION
    assert metrics["genres_without_support"] == []
    assert metrics["per_genre"]["a"]["precision"] == pytest.approx(1 / 3)
    assert metrics["per_genre"]["b"]["recall"] == pytest.approx(1 / 2)
    assert {genre: scores["f1"] for genre, scores in metrics["per_genre"].items()} == pytest.approx(SINGLE_F1)
    assert [scores["support"] for scores in metrics["per_genre"].values()] == [2, 2, 3, 2]
    json.dumps(metrics, allow_nan=False)  # must not raise: the CLI writes it as metrics.json


def test_single_label_perfect_predictor():
    targets = one_hot([0, 1, 2, 3, 1])
    metrics = evaluate_predictions(targets * 0.9 + 0.025, targets, GENRES, "single")

    for key in ("accuracy", "top_k_accuracy", "macro_f1", "weighted_f1"):
        assert metrics[key] == 1.0
    assert np.array_equal(np.diag(metrics["confusion_matrix"]), [1, 2, 1, 1])


def test_single_label_genre_absent_from_split():
    targets = one_hot([0, 0, 1, 1])  # no song of c or d
    probabilities = np.array(
        [[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.7, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1]]
    )
    metrics = evaluate_predictions(probabilities, targets, GENRES, "single")

    assert metrics["genres_without_support"] == ["c", "d"]
    assert metrics["per_genre"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert metrics["per_genre"]["c"]["support"] == 0
    # Macro over a and b only: a has P 1, R 1/2 -> F1 2/3; b has P 1, R 1 -> F1 1.
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 1) / 2)
    assert metrics["confusion_matrix"][3] == [0, 0, 0, 0]


def test_single_label_two_genres():
    metrics = evaluate_predictions(
        np.array([[0.8, 0.2], [0.3, 0.7]]), one_hot([0, 0], 2), ("x", "y"), "single"
    )

    assert metrics["top_k"] == 2
    assert metrics["top_k_accuracy"] == 1.0
    assert metrics["accuracy"] == 0.5


# 4 songs, 3 genres; z has no positive song. Hand-computed at threshold 0.5:
# x: positives 0.9, 0.4 / negatives 0.6, 0.1 -> AP (1 + 2/3) / 2 = 5/6, ROC-AUC 3/4, P 1/2, R 1/2.
# y: positives 0.8, 0.7 rank above both negatives -> AP 1, ROC-AUC 1, P 1, R 1.
# Pooled: 4 positives over 8 negatives, 30 of 32 pairs ordered -> micro ROC-AUC 15/16.
# Micro: tp 3, fp 2, fn 1 -> F1 2/3. Per song F1: 1, 2/3, 2/3, 0 -> samples F1 7/12.
MULTI_GENRES = ("x", "y", "z")
MULTI_TARGETS = [[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]]
MULTI_PROBABILITIES = [[0.9, 0.2, 0.1], [0.4, 0.8, 0.2], [0.6, 0.7, 0.1], [0.1, 0.3, 0.6]]


def test_multi_label_hand_computed():
    metrics = evaluate_predictions(
        np.array(MULTI_PROBABILITIES), np.array(MULTI_TARGETS), MULTI_GENRES, "multi"
    )

    assert metrics["label_mode"] == "multi"
    assert metrics["threshold"] == 0.5
    assert metrics["mean_average_precision"] == pytest.approx((5 / 6 + 1) / 2)
    assert metrics["average_precision_genres_skipped"] == 1
    assert metrics["macro_roc_auc"] == pytest.approx((3 / 4 + 1) / 2)
    assert metrics["roc_auc_genres_skipped"] == 1
    assert metrics["micro_roc_auc"] == pytest.approx(15 / 16)
    assert metrics["micro_f1"] == pytest.approx(2 / 3)
    assert metrics["macro_f1"] == pytest.approx((1 / 2 + 1) / 2)
    assert metrics["example_f1"] == pytest.approx(7 / 12)
    # Per song Jaccard 1, 1/2, 1/2, 0; precision 1, 1, 1/2, 0; recall 1, 1/2, 1, 0; one exact set;
    # 3 of 12 song-genre decisions wrong.
    assert metrics["example_accuracy"] == pytest.approx(0.5)
    assert metrics["example_precision"] == pytest.approx(0.625)
    assert metrics["example_recall"] == pytest.approx(0.625)
    assert metrics["subset_accuracy"] == pytest.approx(0.25)
    assert metrics["hamming_loss"] == pytest.approx(0.25)
    assert metrics["genres_without_support"] == ["z"]
    assert metrics["per_genre"]["x"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2, "average_precision": 5 / 6}
    )
    assert metrics["per_genre"]["z"]["average_precision"] is None
    assert metrics["per_genre"]["z"]["support"] == 0
    json.dumps(metrics, allow_nan=False)


def test_multi_label_threshold_moves_predictions():
    metrics = evaluate_predictions(
        np.array(MULTI_PROBABILITIES), np.array(MULTI_TARGETS), MULTI_GENRES, "multi", threshold=0.35
    )
    # x is now predicted for songs 1-3 (tp 2, fp 1): P 2/3, R 1.
    assert metrics["per_genre"]["x"]["precision"] == pytest.approx(2 / 3)
    assert metrics["per_genre"]["x"]["recall"] == 1.0
    assert metrics["mean_average_precision"] == pytest.approx((5 / 6 + 1) / 2)  # ranking unchanged


def test_multi_label_perfect_predictor():
    targets = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    metrics = evaluate_predictions(targets * 0.8 + 0.1, targets, MULTI_GENRES, "multi")

    for key in (
        "micro_f1",
        "macro_f1",
        "example_f1",
        "example_accuracy",
        "subset_accuracy",
        "mean_average_precision",
        "micro_roc_auc",
        "macro_roc_auc",
    ):
        assert metrics[key] == 1.0
    assert metrics["average_precision_genres_skipped"] == 0
    assert metrics["roc_auc_genres_skipped"] == 0


def test_multi_label_genre_on_every_song_has_no_roc_auc():
    targets = np.array([[1, 1, 0], [1, 0, 0], [1, 0, 1]])  # x on every song: no negatives
    metrics = evaluate_predictions(np.full(targets.shape, 0.5), targets, MULTI_GENRES, "multi")

    assert metrics["roc_auc_genres_skipped"] == 1
    assert metrics["average_precision_genres_skipped"] == 0


def test_multi_label_without_any_positive_is_null_not_nan():
    metrics = evaluate_predictions(np.full((3, 3), 0.2), np.zeros((3, 3), dtype=int), MULTI_GENRES, "multi")

    for key in ("macro_f1", "mean_average_precision", "micro_roc_auc", "macro_roc_auc"):
        assert metrics[key] is None
    json.dumps(metrics, allow_nan=False)
    assert "-" in format_metrics_table(metrics)


def test_selection_scores_are_the_evaluation_headline():
    single = selection_scores(one_hot(SINGLE_TRUE), np.array(SINGLE_PROBABILITIES), "single")
    assert single == pytest.approx({"accuracy": 6 / 9, "macro_f1": 77 / 120})
    multi = selection_scores(np.array(MULTI_TARGETS), np.array(MULTI_PROBABILITIES), "multi")
    # z has no positive song: left out of both macro averages, as evaluation does.
    assert multi == pytest.approx({"macro_f1": (1 / 2 + 1) / 2, "mean_average_precision": (5 / 6 + 1) / 2})
    lower = selection_scores(np.array(MULTI_TARGETS), np.array(MULTI_PROBABILITIES), "multi", threshold=0.35)
    # x is then predicted for songs 1-3: P 2/3, R 1, F1 4/5; the ranking (mAP) is unchanged.
    assert lower == pytest.approx({"macro_f1": (4 / 5 + 1) / 2, "mean_average_precision": (5 / 6 + 1) / 2})


def test_selection_scores_without_any_positive_are_none():
    assert selection_scores(np.zeros((3, 3), dtype=int), np.full((3, 3), 0.2), "multi") == {
        "macro_f1": None,
        "mean_average_precision": None,
    }


@pytest.mark.parametrize(
    ("targets", "probabilities", "label_mode", "message"),
    [
        (one_hot([0, 1]), np.zeros((3, 4)), "single", "same shape"),
        (np.ones((2, 1)), np.zeros((2, 1)), "multi", "at least 2 genres"),
        (np.array([[1, 1, 0, 0], [0, 1, 0, 0]]), np.zeros((2, 4)), "single", "one-hot"),
        (one_hot([0, 1]), np.zeros((2, 4)), "ranking", "label_mode"),
    ],
)
def test_selection_scores_reject_what_evaluation_rejects(targets, probabilities, label_mode, message):
    with pytest.raises(ValueError, match=message):
        selection_scores(targets, probabilities, label_mode)


@pytest.mark.parametrize(
    ("probabilities", "targets", "genres", "label_mode", "message"),
    [
        (np.zeros((2, 4)), one_hot([0, 1]), GENRES, "ranking", "label_mode"),
        (np.zeros((0, 4)), np.zeros((0, 4)), GENRES, "single", "no songs"),
        (np.zeros((3, 4)), one_hot([0, 1]), GENRES, "single", "same shape"),
        (np.zeros(4), np.zeros(4), GENRES, "single", "2-D"),
        (np.zeros((2, 3)), np.eye(3)[:2], GENRES, "single", "3 probability columns but 4 genre names"),
        (np.zeros((2, 4)), one_hot([0, 1]), ("a", "a", "b", "c"), "single", "unique"),
        (np.full((2, 4), np.nan), one_hot([0, 1]), GENRES, "single", "NaN"),
        (np.zeros((2, 4)), np.full((2, 4), 2), GENRES, "multi", "0 and 1"),
        (np.zeros((2, 4)), np.array([[1, 1, 0, 0], [0, 1, 0, 0]]), GENRES, "single", "one-hot"),
        (np.zeros((2, 1)), np.ones((2, 1)), ("a",), "multi", "at least 2 genres"),
    ],
)
def test_invalid_input_raises(probabilities, targets, genres, label_mode, message):
    with pytest.raises(ValueError, match=message):
        evaluate_predictions(probabilities, targets, genres, label_mode)


def test_table_lists_every_genre_and_the_headline():
    single = format_metrics_table(
        evaluate_predictions(np.array(SINGLE_PROBABILITIES), one_hot(SINGLE_TRUE), GENRES, "single")
    )
    multi = format_metrics_table(
        evaluate_predictions(np.array(MULTI_PROBABILITIES), np.array(MULTI_TARGETS), MULTI_GENRES, "multi")
    )

    assert "accuracy" in single and "0.667" in single and "top-3 accuracy" in single
    assert "mAP" in multi and "0.917" in multi and "AP" in multi.splitlines()[-5]
    assert re.search(r"genres without songs +z", multi)
    assert re.search(r"mAP \(2/3 genres\) +0\.917", multi)
    for table, genres in ((single, GENRES), (multi, MULTI_GENRES)):
        rows = table.splitlines()[-len(genres) :]
        assert [row.split()[0] for row in rows] == list(genres)
        assert len({len(row) for row in rows}) == 1  # aligned columns
