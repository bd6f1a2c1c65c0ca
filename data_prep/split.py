"""Artist-grouped, label-stratified, seeded train/val/test split."""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

SPLIT_NAMES = ("train", "val", "test")
MAX_FOLDS = 100


class SplitError(ValueError):
    """A split that cannot be made from these songs or fractions."""


def parse_fractions(text: str) -> tuple[float, float, float]:
    """'0.8,0.1,0.1' -> (0.8, 0.1, 0.1); they must be three, positive for train, and sum to 1."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError as error:
        raise SplitError(f"--split {text!r}: expected three numbers such as 0.8,0.1,0.1") from error
    if len(values) != 3 or values[0] <= 0 or min(values) < 0 or abs(sum(values) - 1) > 1e-6:
        raise SplitError(f"--split {text!r}: expected three fractions train,val,test summing to 1")
    return values


def _fold_counts(fractions: tuple[float, ...]) -> tuple[int, ...]:
    """Fractions as whole folds of one StratifiedGroupKFold: 0.8,0.1,0.1 -> 8,1,1."""
    folds = int(np.lcm.reduce([Fraction(v).limit_denominator(MAX_FOLDS).denominator for v in fractions]))
    return tuple(int(round(value * folds)) for value in fractions)


def split_by_artist(
    labels: np.ndarray, artists: np.ndarray, fractions: tuple[float, float, float], seed: int
) -> np.ndarray:
    """Assign each song to train/val/test.

    `labels` [songs] is the stratification label (the first genre index), `artists` [songs] the
    group: no artist lands on two sides. Every genre ends up in train: a genre the folds left out
    of train brings one of its artists over from val/test. Returns [songs] split names.
    """
    folds_per_split = _fold_counts(fractions)
    folds = sum(folds_per_split)
    unique_artists = np.unique(artists)
    if len(unique_artists) < folds:
        raise SplitError(
            f"{len(unique_artists)} artists cannot be split {fractions} by artist "
            f"(needs at least {folds}); add songs or use a coarser --split"
        )
    fold_of_song = np.empty(len(labels), dtype=int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class" on rare genres
        # Stratifying needs some genre with a song per fold; a tiny collection is split by group only.
        stratifiable = np.unique(labels, return_counts=True)[1].max() >= folds
        splitter = (StratifiedGroupKFold if stratifiable else GroupKFold)(
            n_splits=folds, shuffle=True, random_state=seed
        )
        for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels, artists)):
            fold_of_song[held_out] = fold
    boundaries = np.cumsum(folds_per_split)
    split = np.array(SPLIT_NAMES, dtype=object)[np.searchsorted(boundaries, fold_of_song, side="right")]

    for genre in np.unique(labels):
        if not np.any((labels == genre) & (split == "train")):
            artist = sorted(artists[labels == genre])[0]
            split[artists == artist] = "train"
    return split.astype(str)
