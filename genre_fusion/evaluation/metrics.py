"""Evaluation metrics of genre predictions, as a JSON-ready dict and as a terminal table.

All numbers come from `sklearn.metrics`. Macro averages run over the genres that have at least one
true song in the evaluated split: a genre absent from the split has no recall to measure, and
counting it as F1 0 (or 1) would move the average by a fixed amount that says nothing about the
model. Those genres are listed under `genres_without_support` and keep their row (support 0).

`selection_scores` gives the headline numbers alone (accuracy and macro-F1, or macro-F1 and mAP),
computed by the same code, for choosing between models the way evaluation would rank them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    hamming_loss,
    jaccard_score,
    precision_recall_fscore_support,
    roc_auc_score,
    top_k_accuracy_score,
)

from genre_fusion.data.shards import LABEL_MODES

TOP_K = 3  # top-k accuracy uses k = min(TOP_K, genres)
MIN_GENRES = 2  # fewer is not a classification
PER_GENRE_THRESHOLD_ROWS = (("example_accuracy", "example-based accuracy"), ("example_f1", "example F1"))


def evaluate_predictions(
    probabilities: np.ndarray,
    targets: np.ndarray,
    genres: Sequence[str],
    label_mode: str,
    threshold: float | np.ndarray = 0.5,
) -> dict:
    """Scores genre predictions of one split.

    Args:
        probabilities: float [songs, genres]; softmax rows (`single`) or independent sigmoids (`multi`).
        targets: [songs, genres] of 0/1; one-hot rows (`single`) or multi-hot rows (`multi`).
        genres: the genre names, one per column, unique.
        label_mode: "single" or "multi".
        threshold: `multi` only; a genre is predicted when its probability is >= threshold: one
            number, or float [genres], one per genre (`genre_fusion.evaluation.thresholds`).

    Returns:
        A JSON-serialisable dict (python ints, floats, lists; None where a number is undefined).
        Both modes:
            `label_mode`, `songs` (int), `genres` (list of names, the column order),
            `genres_without_support` (names of the genres without a true song in the split),
            `macro_f1` (over the genres with support; None in `multi` if no genre has any),
            `per_genre`: {genre: {`precision`, `recall`, `f1`, `support`}} in column order;
            precision is 0 for a genre never predicted, recall and F1 are 0 for support 0.
        `single` adds:
            `accuracy`, `top_k` (int, min(3, genres)), `top_k_accuracy`,
            `weighted_f1` (weighted by support),
            `confusion_matrix` ([genres][genres] song counts, rows = true genre, columns = predicted).
        `multi` adds:
            `threshold` (a number, or a list per genre), `micro_f1`,
            the example-based metrics, per song then averaged over songs (Godbole & Sarawagi 2004;
            Zhang & Zhou, IEEE TKDE 2014, 2.2.1), each 0 for a song without true or predicted
            genres: `example_accuracy` (|true ∩ predicted| / |true ∪ predicted|, the Jaccard
            index), `example_precision`, `example_recall`, `example_f1`;
            `subset_accuracy` (songs whose predicted set equals the true set), `hamming_loss`
            (wrong song-genre decisions over all of them),
            `mean_average_precision` (macro AP over the genres with a positive song; None if none),
            `average_precision_genres_skipped` (int, genres left out of it),
            `micro_roc_auc` (all (song, genre) pairs pooled; None without both classes),
            `macro_roc_auc` (over the genres with positive and negative songs; None if none),
            `roc_auc_genres_skipped` (int, genres left out of it),
            and `average_precision` in each `per_genre` entry (None for a genre without positives).

    Raises:
        ValueError: on an unknown label mode, empty input, mismatched shapes or genre count,
            duplicate genre names, non-finite probabilities, or targets that are not 0/1 (one-hot
            rows in `single`).
    """
    probabilities, targets = _validated(probabilities, targets, genres, label_mode)
    support = targets.sum(axis=0).astype(int)
    common = {
        "label_mode": label_mode,
        "songs": int(targets.shape[0]),
        "genres": list(genres),
        "genres_without_support": [genres[i] for i in np.flatnonzero(support == 0)],
    }
    if label_mode == "single":
        return common | _single_label(probabilities, targets, genres)
    return common | _multi_label(probabilities, targets, genres, threshold)


def selection_scores(
    targets: np.ndarray, probabilities: np.ndarray, label_mode: str, threshold: float | np.ndarray = 0.5
) -> dict[str, float | None]:
    """The numbers to select a model by, exactly as `evaluate_predictions` reports them.

    Args:
        targets: [songs, genres] of 0/1; one-hot rows (`single`) or multi-hot rows (`multi`).
        probabilities: float [songs, genres], as `evaluate_predictions` takes them.
        label_mode: "single" or "multi".
        threshold: `multi` only; a genre is predicted when its probability is >= threshold.

    Returns:
        `single`: {`accuracy`, `macro_f1`}; `multi`: {`macro_f1`, `mean_average_precision`},
        each None where undefined (no genre with a positive song). Macro averages run over the
        genres with a true song, as in `evaluate_predictions`.

    Raises:
        ValueError: as `evaluate_predictions`.
    """
    probabilities, targets = _validated(probabilities, targets, None, label_mode)
    if label_mode == "single":
        true, predicted = targets.argmax(axis=1), probabilities.argmax(axis=1)
        return _single_label_scores(true, predicted, _with_support(targets))
    predicted = _multi_label_predictions(probabilities, threshold)
    return _multi_label_scores(targets, predicted, _average_precisions(probabilities, targets))


def _validated(
    probabilities: np.ndarray, targets: np.ndarray, genres: Sequence[str] | None, label_mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """Checks the inputs of `evaluate_predictions` (`genres` None: unnamed columns); returns them as
    float64 / int arrays."""
    if label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode must be one of {LABEL_MODES}, got {label_mode!r}")
    probabilities = np.asarray(probabilities, dtype=np.float64)
    targets = np.asarray(targets)
    if probabilities.ndim != 2 or targets.ndim != 2:
        raise ValueError(
            f"probabilities and targets must be 2-D [songs, genres], got shapes "
            f"{probabilities.shape} and {targets.shape}"
        )
    if probabilities.shape != targets.shape:
        raise ValueError(
            f"probabilities {probabilities.shape} and targets {targets.shape} must have the same shape"
        )
    if probabilities.shape[0] == 0:
        raise ValueError("no songs to evaluate: probabilities and targets are empty")
    columns = probabilities.shape[1]
    if genres is not None and columns != len(genres):
        raise ValueError(f"{columns} probability columns but {len(genres)} genre names")
    if columns < MIN_GENRES:
        raise ValueError(f"at least {MIN_GENRES} genres are needed, got {columns}")
    if genres is not None and len(set(genres)) != len(genres):
        raise ValueError("genre names must be unique")
    if not np.isfinite(probabilities).all():
        raise ValueError("probabilities contain NaN or infinity (did training diverge?)")
    if not np.isin(targets, (0, 1)).all():
        raise ValueError("targets must hold only 0 and 1 (one-hot or multi-hot rows)")
    targets = targets.astype(int)
    if label_mode == "single" and not (targets.sum(axis=1) == 1).all():
        raise ValueError("single-label targets must be one-hot: exactly one 1 per song")
    return probabilities, targets


def _per_genre(
    targets: np.ndarray, predicted: np.ndarray, genres: Sequence[str], labels: np.ndarray
) -> dict[str, dict]:
    """{genre: precision, recall, f1, support} from class indices [songs] or indicators [songs, genres]."""
    precision, recall, f1, support = precision_recall_fscore_support(
        targets, predicted, labels=labels, zero_division=0
    )
    return {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(genres, precision, recall, f1, support, strict=True)
    }


def _with_support(targets: np.ndarray) -> np.ndarray:
    """Column indices of the genres with at least one true song: what macro averages run over."""
    return np.flatnonzero(targets.sum(axis=0) > 0)


def _single_label_scores(
    true: np.ndarray, predicted: np.ndarray, with_support: np.ndarray
) -> dict[str, float]:
    """`accuracy` and `macro_f1` from true and predicted genre indices [songs]."""
    return {
        "accuracy": float(accuracy_score(true, predicted)),
        "macro_f1": float(f1_score(true, predicted, labels=with_support, average="macro", zero_division=0)),
    }


def _single_label(probabilities: np.ndarray, targets: np.ndarray, genres: Sequence[str]) -> dict:
    """The `single` part of `evaluate_predictions`' result."""
    labels = np.arange(len(genres))
    true = targets.argmax(axis=1)
    predicted = probabilities.argmax(axis=1)
    with_support = _with_support(targets)
    top_k = min(TOP_K, len(genres))
    with warnings.catch_warnings():
        # With 3 genres or fewer k covers them all and the score is 1.0 by construction, which
        # scikit-learn warns about; the table prints k beside it.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        # With exactly 2 genres scikit-learn wants the positive column only.
        top_k_accuracy = top_k_accuracy_score(
            true, probabilities if len(genres) > 2 else probabilities[:, 1], k=top_k, labels=labels
        )
    return {
        **_single_label_scores(true, predicted, with_support),
        "top_k": top_k,
        "top_k_accuracy": float(top_k_accuracy),
        "weighted_f1": float(
            f1_score(true, predicted, labels=with_support, average="weighted", zero_division=0)
        ),
        "confusion_matrix": confusion_matrix(true, predicted, labels=labels).tolist(),
        "per_genre": _per_genre(true, predicted, genres, labels),
    }


def _multi_label_predictions(probabilities: np.ndarray, threshold: float | np.ndarray) -> np.ndarray:
    """[songs, genres] of 0/1: a genre is predicted when its probability is >= its threshold."""
    return (probabilities >= np.asarray(threshold)).astype(int)


def _example_based(targets: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """The example-based scores of indicator matrices [songs, genres] (see `evaluate_predictions`)."""
    precision, recall, f1, _ = precision_recall_fscore_support(
        targets, predicted, average="samples", zero_division=0
    )
    return {
        "example_accuracy": float(jaccard_score(targets, predicted, average="samples", zero_division=0)),
        "example_precision": float(precision),
        "example_recall": float(recall),
        "example_f1": float(f1),
        "subset_accuracy": float(accuracy_score(targets, predicted)),
        "hamming_loss": float(hamming_loss(targets, predicted)),
    }


def _average_precisions(probabilities: np.ndarray, targets: np.ndarray) -> dict[int, float]:
    """Average precision by column index, for the genres with a positive song."""
    return {
        i: float(average_precision_score(targets[:, i], probabilities[:, i])) for i in _with_support(targets)
    }


def _multi_label_scores(
    targets: np.ndarray, predicted: np.ndarray, average_precision: dict[int, float]
) -> dict[str, float | None]:
    """`macro_f1` and `mean_average_precision` from targets and thresholded predictions [songs,
    genres] of 0/1 and the genres' average precisions (`_average_precisions`)."""
    with_support = _with_support(targets)
    return {
        "macro_f1": float(f1_score(targets, predicted, labels=with_support, average="macro", zero_division=0))
        if len(with_support)
        else None,
        "mean_average_precision": float(np.mean(list(average_precision.values())))
        if average_precision
        else None,
    }


def _multi_label(
    probabilities: np.ndarray, targets: np.ndarray, genres: Sequence[str], threshold: float | np.ndarray
) -> dict:
    """The `multi` part of `evaluate_predictions`' result."""
    with_support = _with_support(targets)
    predicted = _multi_label_predictions(probabilities, threshold)
    per_genre = _per_genre(targets, predicted, genres, np.arange(len(genres)))
    average_precision = _average_precisions(probabilities, targets)
    for i, name in enumerate(genres):
        per_genre[name]["average_precision"] = average_precision.get(i)
    # ROC needs negatives too: a genre every song carries has no curve.
    both_classes = with_support[targets[:, with_support].min(axis=0) == 0]
    pooled_has_both = 0 < targets.sum() < targets.size
    return {
        "threshold": np.asarray(threshold, dtype=float).tolist(),
        "micro_f1": float(f1_score(targets, predicted, average="micro", zero_division=0)),
        **_multi_label_scores(targets, predicted, average_precision),
        **_example_based(targets, predicted),
        "average_precision_genres_skipped": len(genres) - len(average_precision),
        "micro_roc_auc": float(roc_auc_score(targets, probabilities, average="micro"))
        if pooled_has_both
        else None,
        "macro_roc_auc": float(
            roc_auc_score(targets[:, both_classes], probabilities[:, both_classes], average="macro")
        )
        if len(both_classes)
        else None,
        "roc_auc_genres_skipped": len(genres) - len(both_classes),
        "per_genre": per_genre,
    }


def format_metrics_table(metrics: dict) -> str:
    """The result of `evaluate_predictions` as plain text: headline numbers, then one row per genre.

    Args:
        metrics: a dict returned by `evaluate_predictions` (or read back from its JSON).

    Returns:
        Multi-line text without a trailing newline; undefined numbers print as "-".
    """
    total = len(metrics["genres"])
    supported = f"{total - len(metrics['genres_without_support'])}/{total} genres"
    headline: list[tuple[str, object]] = [
        ("songs", metrics["songs"]),
        ("label mode", metrics["label_mode"]),
    ]
    if metrics["label_mode"] == "single":
        headline += [
            ("accuracy", metrics["accuracy"]),
            (f"top-{metrics['top_k']} accuracy", metrics["top_k_accuracy"]),
            (f"macro-F1 ({supported})", metrics["macro_f1"]),
            ("weighted-F1", metrics["weighted_f1"]),
        ]
    else:
        headline += [
            ("threshold", _threshold_cell(metrics)),
            ("example-based accuracy", metrics["example_accuracy"]),
            ("example-based F1", metrics["example_f1"]),
            ("subset accuracy", metrics["subset_accuracy"]),
            ("micro-F1", metrics["micro_f1"]),
            (f"macro-F1 ({supported})", metrics["macro_f1"]),
            *(
                (f"{name}, per-genre thresholds", metrics["with_per_genre_thresholds"][key])
                for key, name in PER_GENRE_THRESHOLD_ROWS
                if "with_per_genre_thresholds" in metrics
            ),
            (
                f"mAP ({total - metrics['average_precision_genres_skipped']}/{total} genres)",
                metrics["mean_average_precision"],
            ),
            ("micro ROC-AUC", metrics["micro_roc_auc"]),
            (
                f"macro ROC-AUC ({total - metrics['roc_auc_genres_skipped']}/{total} genres)",
                metrics["macro_roc_auc"],
            ),
        ]
    if metrics["genres_without_support"]:
        headline.append(("genres without songs", ", ".join(metrics["genres_without_support"])))
    label_width = max(len(label) for label, _ in headline)
    lines = [f"{label:<{label_width}}  {_cell(value)}" for label, value in headline]

    columns = ["precision", "recall", "f1", "support"]
    if metrics["label_mode"] == "multi":
        columns.append("average_precision")
    headers = {"f1": "F1", "average_precision": "AP"}
    rows = [
        [genre] + [_cell(scores[column]) for column in columns]
        for genre, scores in metrics["per_genre"].items()
    ]
    header = ["genre"] + [headers.get(column, column) for column in columns]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def aligned(row: list[str]) -> str:
        # Genre names read left-aligned, numbers right-aligned so their decimal points line up.
        return "  ".join(
            [row[0].ljust(widths[0])]
            + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        )

    lines += ["", aligned(header), "  ".join("-" * width for width in widths)]
    lines += [aligned(row) for row in rows]
    return "\n".join(lines)


def _threshold_cell(metrics: dict) -> str:
    """The decision threshold: one number, or "per genre", and the split it was chosen on."""
    threshold = metrics["threshold"]
    shown = "per genre" if isinstance(threshold, list) else _cell(float(threshold))
    chosen = metrics.get("thresholds", {}).get("chosen_on")
    return f"{shown} (chosen on {chosen})" if chosen else shown


def _cell(value: object) -> str:
    """A table cell: floats with 3 decimals, None as "-", anything else as str."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
