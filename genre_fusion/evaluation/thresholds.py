"""Decision thresholds of a multi-label model, chosen on the validation split.

A sigmoid output is a score, not a decision: 0.5 is rarely the best cut for 50–87 genres whose
frequencies differ a hundredfold. Thresholds are chosen on the validation split, never on the
split being scored, and applied unchanged to the test split:

- a **global** threshold maximising example-based F1 (per song, the F1 of its true and predicted
  genre sets, averaged over songs: the "F" that multi-label genre papers report);
- a threshold **per genre** maximising that genre's F1; a genre without a positive validation
  song keeps the global one.

Candidates are a fixed grid; where several tie, the middle one of the tied run is taken, so that a
plateau of a small validation split does not push the threshold to its edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

THRESHOLD_GRID = np.round(np.arange(0.02, 0.99, 0.01), 2)  # [candidates]
CRITERION = "example-based F1 (global), per-genre F1 (per genre)"


@dataclass(frozen=True)
class Thresholds:
    """`global_threshold` (float), `per_genre` float [genres], and the split they were chosen on."""

    global_threshold: float
    per_genre: np.ndarray
    chosen_on: str

    def to_dict(self, genres: Sequence[str]) -> dict:
        """As metrics.json records them: {chosen_on, criterion, global, per_genre: {genre: t}}."""
        return {
            "chosen_on": self.chosen_on,
            "criterion": CRITERION,
            "global": self.global_threshold,
            "per_genre": {genre: float(t) for genre, t in zip(genres, self.per_genre, strict=True)},
        }


def _middle_of_best(scores: np.ndarray) -> float:
    """The grid threshold in the middle of the (first) run of candidates that tie for the best score."""
    best = np.flatnonzero(np.isclose(scores, scores.max()))
    run_end = np.flatnonzero(np.diff(best) > 1)
    run = best[: run_end[0] + 1] if len(run_end) else best
    return float(THRESHOLD_GRID[run[len(run) // 2]])


def example_f1_by_threshold(probabilities: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Example-based F1 at each threshold of `THRESHOLD_GRID`: float [candidates].

    `probabilities` float and `targets` 0/1, both [songs, genres]; a song without true and
    predicted genres scores 0, as `genre_fusion.evaluation.metrics` counts it."""
    predicted = probabilities[None, :, :] >= THRESHOLD_GRID[:, None, None]  # [candidates, songs, genres]
    overlap = (predicted & (targets[None] == 1)).sum(axis=2)
    sizes = predicted.sum(axis=2) + targets.sum(axis=1)[None]
    return np.divide(2 * overlap, sizes, out=np.zeros(sizes.shape), where=sizes > 0).mean(axis=1)


def genre_f1_by_threshold(probabilities: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Each genre's F1 at each threshold of `THRESHOLD_GRID`: float [candidates, genres]."""
    predicted = probabilities[None, :, :] >= THRESHOLD_GRID[:, None, None]
    positive = targets[None] == 1
    true_positives = (predicted & positive).sum(axis=1)
    sizes = predicted.sum(axis=1) + positive.sum(axis=1)
    return np.divide(2 * true_positives, sizes, out=np.zeros(sizes.shape), where=sizes > 0)


def choose_thresholds(probabilities: np.ndarray, targets: np.ndarray, chosen_on: str = "val") -> Thresholds:
    """Thresholds chosen on one split's predictions.

    Args:
        probabilities: float [songs, genres], independent sigmoids.
        targets: [songs, genres] of 0/1.
        chosen_on: the split's name, recorded with the thresholds.

    Returns:
        `Thresholds` with the global threshold maximising example-based F1 and one per genre
        maximising its F1 (the global one for a genre without a positive song).
    """
    probabilities, targets = np.asarray(probabilities, dtype=np.float64), np.asarray(targets).astype(int)
    global_threshold = _middle_of_best(example_f1_by_threshold(probabilities, targets))
    scores = genre_f1_by_threshold(probabilities, targets)
    per_genre = np.array(
        [
            _middle_of_best(scores[:, genre]) if targets[:, genre].any() else global_threshold
            for genre in range(targets.shape[1])
        ]
    )
    return Thresholds(global_threshold, per_genre, chosen_on)
