"""Per-song decision counts of one model's test predictions, and bootstrap resamples of its scores.

Every headline score is a function of per-song counts: accuracy and the example-based scores are
means of a per-song number, and micro- and macro-F1 are sums of per-song true positives, false
positives and false negatives. A bootstrap resample of the songs is then a weight per song (how
often it was drawn), and a thousand resamples of a model's scores are a few matrix products
instead of a thousand calls to scikit-learn. `scores(weights)` with every weight 1 gives what
`genre_fusion.evaluation.metrics.evaluate_predictions` reports (tested against it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HEADLINES = {
    "single": ("accuracy", "macro_f1"),
    "multi": ("example_accuracy", "example_f1", "micro_f1", "macro_f1"),
}


def _f1(true_positives: np.ndarray, false_positives: np.ndarray, false_negatives: np.ndarray) -> np.ndarray:
    denominator = 2 * true_positives + false_positives + false_negatives
    return np.divide(2 * true_positives, denominator, out=np.zeros(denominator.shape), where=denominator > 0)


@dataclass(frozen=True)
class SongScores:
    """Per-song counts [songs, genres] (`true_positives`, `false_positives`, `false_negatives`) and
    per-song scores [songs] (`correct` for single label; `jaccard`, `f1` for multi-label)."""

    label_mode: str
    true_positives: np.ndarray
    false_positives: np.ndarray
    false_negatives: np.ndarray
    per_song: dict[str, np.ndarray]

    @classmethod
    def of(
        cls,
        probabilities: np.ndarray,
        targets: np.ndarray,
        label_mode: str,
        threshold: float | np.ndarray = 0.5,
    ) -> SongScores:
        """From probabilities and 0/1 targets [songs, genres]: the top genre is the decision
        (`single`), or every genre at or above its threshold (`multi`: a number or [genres])."""
        targets = np.asarray(targets).astype(bool)
        if label_mode == "single":
            predicted = np.eye(targets.shape[1], dtype=bool)[np.argmax(probabilities, axis=1)]
        else:
            predicted = np.asarray(probabilities) >= np.asarray(threshold)
        true_positives = (predicted & targets).astype(float)
        false_positives = (predicted & ~targets).astype(float)
        false_negatives = (~predicted & targets).astype(float)
        overlap, union = true_positives.sum(axis=1), (predicted | targets).sum(axis=1)
        sizes = predicted.sum(axis=1) + targets.sum(axis=1)
        per_song = (
            {"correct": overlap}
            if label_mode == "single"
            else {
                # A song without true and predicted genres scores 0, as scikit-learn's zero_division=0.
                "jaccard": np.divide(overlap, union, out=np.zeros(len(union)), where=union > 0),
                "f1": np.divide(2 * overlap, sizes, out=np.zeros(len(sizes)), where=sizes > 0),
            }
        )
        return cls(label_mode, true_positives, false_positives, false_negatives, per_song)

    @property
    def songs(self) -> int:
        return self.true_positives.shape[0]

    def scores(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """The headline scores under song weights [resamples, songs] (counts of each song in each
        resample): {score: [resamples]}. Macro-F1 averages the genres with a true song in the resample."""
        weights = np.atleast_2d(weights).astype(float)
        drawn = weights.sum(axis=1)
        true_positives, false_positives, false_negatives = (
            weights @ counts for counts in (self.true_positives, self.false_positives, self.false_negatives)
        )
        supported = (true_positives + false_negatives) > 0
        genre_f1 = _f1(true_positives, false_positives, false_negatives)
        scores = {
            "macro_f1": (genre_f1 * supported).sum(axis=1) / np.maximum(supported.sum(axis=1), 1),
        }
        if self.label_mode == "single":
            scores["accuracy"] = weights @ self.per_song["correct"] / drawn
        else:
            scores["example_accuracy"] = weights @ self.per_song["jaccard"] / drawn
            scores["example_f1"] = weights @ self.per_song["f1"] / drawn
            totals = (counts.sum(axis=1) for counts in (true_positives, false_positives, false_negatives))
            scores["micro_f1"] = _f1(*totals)
        return {name: scores[name] for name in HEADLINES[self.label_mode]}


def bootstrap_weights(songs: int, resamples: int, seed: int) -> np.ndarray:
    """[resamples, songs]: how often each song is drawn in each resample (songs drawn with replacement)."""
    draws = np.random.default_rng(seed).integers(0, songs, size=(resamples, songs))
    return np.stack([np.bincount(row, minlength=songs) for row in draws]).astype(np.float32)


def seed_mean_interval(
    per_seed: list[SongScores], resamples: int, seed: int, confidence: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of each headline score's mean over the seeds' runs.

    The same resampled songs serve every seed (they were scored on the same test split), so the
    interval is that of the seed-mean under test-set sampling; the seeds' spread is reported
    separately as a standard deviation. Returns {score: (low, high)}."""
    weights = bootstrap_weights(per_seed[0].songs, resamples, seed)
    resampled = [run.scores(weights) for run in per_seed]
    tail = (1 - confidence) / 2 * 100
    intervals = {}
    for name in resampled[0]:
        seed_means = np.mean([run[name] for run in resampled], axis=0)
        low, high = np.percentile(seed_means, [tail, 100 - tail])
        intervals[name] = (float(low), float(high))
    return intervals
