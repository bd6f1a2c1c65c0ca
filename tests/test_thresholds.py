"""Multi-label decision thresholds chosen on the validation split (genre_fusion.evaluation.thresholds)."""

import numpy as np
import pytest

from genre_fusion.evaluation.metrics import evaluate_predictions
from genre_fusion.evaluation.thresholds import choose_thresholds


def _scores(rng, targets: np.ndarray, positive: list[float], negative: list[float]) -> np.ndarray:
    """Probabilities [songs, genres] around each genre's positive and negative levels (± 0.04)."""
    levels = np.where(targets == 1, np.array(positive), np.array(negative))
    return levels + rng.uniform(-0.04, 0.04, targets.shape)


def _targets(rng, songs: int, rates: list[float]) -> np.ndarray:
    """Multi-hot rows [songs, genres], each genre at its rate; every song has a genre, as in shards."""
    targets = (rng.random((songs, len(rates))) < np.array(rates)).astype(int)
    unlabelled = np.flatnonzero(targets.sum(axis=1) == 0)
    targets[unlabelled, rng.choice(np.flatnonzero(rates), len(unlabelled))] = 1
    return targets


def test_each_genre_gets_the_threshold_that_separates_its_songs():
    rng = np.random.default_rng(0)
    targets = _targets(rng, 300, [0.3, 0.5, 0.2])
    # Genre 0 is under-confident (positives near 0.3), genre 1 over-confident (negatives near 0.6).
    probabilities = _scores(rng, targets, positive=[0.3, 0.85, 0.7], negative=[0.1, 0.6, 0.2])
    thresholds = choose_thresholds(probabilities, targets)

    assert 0.14 < thresholds.per_genre[0] <= 0.26
    assert 0.64 < thresholds.per_genre[1] <= 0.81
    assert 0.24 < thresholds.per_genre[2] <= 0.66
    # Inside a plateau of perfect separation the middle is taken, not an edge.
    assert thresholds.per_genre[0] == pytest.approx(0.2, abs=0.03)
    assert thresholds.chosen_on == "val"
    per_genre = evaluate_predictions(probabilities, targets, ("a", "b", "c"), "multi", thresholds.per_genre)
    assert per_genre["example_f1"] == 1.0 and per_genre["threshold"] == pytest.approx(thresholds.per_genre)


def test_val_thresholds_carry_over_to_test_songs_better_than_one_half():
    rng = np.random.default_rng(1)
    rates, positive, negative = [0.3, 0.4, 0.25, 0.1], [0.35, 0.9, 0.45, 0.3], [0.15, 0.55, 0.05, 0.1]
    val, test = _targets(rng, 200, rates), _targets(rng, 200, rates)
    thresholds = choose_thresholds(_scores(rng, val, positive, negative), val)

    test_probabilities = _scores(rng, test, positive, negative)
    genres = ("a", "b", "c", "d")
    at_half = evaluate_predictions(test_probabilities, test, genres, "multi", 0.5)
    at_global = evaluate_predictions(test_probabilities, test, genres, "multi", thresholds.global_threshold)
    at_genre = evaluate_predictions(test_probabilities, test, genres, "multi", thresholds.per_genre)
    assert at_half["example_f1"] < at_global["example_f1"] < at_genre["example_f1"]
    assert at_genre["example_accuracy"] > 0.95


def test_a_genre_without_a_positive_validation_song_keeps_the_global_threshold():
    rng = np.random.default_rng(2)
    targets = _targets(rng, 120, [0.4, 0.4, 0.0])
    thresholds = choose_thresholds(_scores(rng, targets, [0.7, 0.6, 0.5], [0.2, 0.3, 0.4]), targets)
    assert thresholds.per_genre[2] == thresholds.global_threshold
    record = thresholds.to_dict(("a", "b", "c"))
    assert record["global"] == thresholds.global_threshold and set(record["per_genre"]) == {"a", "b", "c"}
