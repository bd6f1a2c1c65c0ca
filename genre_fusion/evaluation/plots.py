"""Evaluation figures written as PNG files: confusion matrix, training curves, per-genre F1.

Figures are built with `matplotlib.figure.Figure` on an Agg canvas, never through `pyplot`: no
display is needed, no global figure registry fills up, and nothing depends on the MPLBACKEND of
the machine. Each function returns the path it wrote, creating the parent folder if needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 120
COLORMAP = "Blues"
ANNOTATE_MAX_GENRES = 20  # beyond this the count labels no longer fit inside their cells
INCHES_PER_GENRE = 0.45  # cell size of the confusion matrix, bar pitch of the F1 chart
MAX_FIGURE_INCHES = 40.0  # keeps a huge vocabulary (853 genres) within what a PNG viewer opens

EPOCH = "epoch"
LOSS = "loss"
VALIDATION_PREFIX = "val_"
LEARNING_RATE_COLUMNS = ("learning_rate", "lr")  # Keras 3 name, then Keras 2's
MAIN_METRICS = ("accuracy", "auc")  # the metric panel shows the first one logged, else any other


def save_png(figure: Figure, path: str | PathLike) -> Path:
    """Writes `figure` as PNG to `path` (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI)
    return path


def _figure_inches(genres: int, extra: float) -> float:
    """A figure side that grows with the number of genres, between 4 and MAX_FIGURE_INCHES."""
    return float(np.clip(INCHES_PER_GENRE * genres + extra, 4.0, MAX_FIGURE_INCHES))


def plot_confusion_matrix(
    matrix: np.ndarray, genres: Sequence[str], path: str | PathLike, normalize: bool = True
) -> Path:
    """Draws a confusion matrix as a heat map.

    Args:
        matrix: song counts [genres, genres], rows = true genre, columns = predicted genre (the
            `confusion_matrix` of `genre_fusion.metrics.evaluate_predictions`).
        genres: the genre names, one per row.
        path: where to write the PNG.
        normalize: colour each row by the share of its true genre's songs (so rare genres are as
            readable as frequent ones); False colours by raw counts. Cells show counts either way,
            when there are at most ANNOTATE_MAX_GENRES genres.

    Returns:
        `path` as a Path.

    Raises:
        ValueError: if the matrix is not square or its size differs from the number of genres.
    """
    counts = np.asarray(matrix)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] != len(genres):
        raise ValueError(f"confusion matrix of shape {counts.shape} does not match {len(genres)} genres")
    genre_count = len(genres)
    row_totals = counts.sum(axis=1, keepdims=True)
    if normalize:
        # A genre without songs in the split keeps an empty (zero) row instead of dividing by zero.
        colours = np.divide(counts, row_totals, out=np.zeros(counts.shape), where=row_totals > 0)
        top = 1.0
    else:
        colours = counts.astype(float)
        top = max(float(counts.max()), 1.0)

    side = _figure_inches(genre_count, extra=3.0)
    figure = Figure(figsize=(side + 1.5, side), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(colours, cmap=COLORMAP, vmin=0.0, vmax=top)
    axes.set_xticks(range(genre_count), labels=genres, rotation=45, ha="right", rotation_mode="anchor")
    # Row totals beside the names: a normalised row hides how many songs stand behind it.
    axes.set_yticks(
        range(genre_count),
        labels=[f"{name} ({int(total)})" for name, total in zip(genres, row_totals[:, 0], strict=True)],
    )
    axes.set_xlabel("predicted genre")
    axes.set_ylabel("true genre (songs)")
    scale = "share of the true genre's songs" if normalize else "songs"
    figure.colorbar(image, ax=axes, label=scale, shrink=0.8)
    if genre_count <= ANNOTATE_MAX_GENRES:
        for (row, column), count in np.ndenumerate(counts):
            dark = colours[row, column] > 0.5 * top
            axes.text(column, row, str(count), ha="center", va="center", color="white" if dark else "black")
    colouring = "rows normalised" if normalize else "counts"
    axes.set_title(f"Confusion matrix, {int(counts.sum())} songs ({colouring})")
    return save_png(figure, path)


def load_history(history_csv: str | PathLike) -> pd.DataFrame:
    """Reads a Keras CSVLogger file, one row per epoch.

    A resumed run appends to the same file and restarts at the epoch after its checkpoint. Its rows
    supersede every earlier row from that epoch on, including epochs the interrupted run reached
    but the resumed one did not (it may stop sooner): a row is kept only if no later row has an
    epoch number at or below its own. Among repeats of an epoch, that keeps the last.

    Args:
        history_csv: the CSV (columns `epoch` and whatever Keras logged: loss, val_loss, ...).

    Returns:
        DataFrame in increasing `epoch` (as logged, 0-based), one row per epoch, same columns.

    Raises:
        ValueError: if the file has no `epoch` column or no rows.
    """
    history = pd.read_csv(history_csv)
    if EPOCH not in history.columns:
        raise ValueError(f"{history_csv} has no {EPOCH!r} column: is it a Keras CSVLogger file?")
    if history.empty:
        raise ValueError(f"{history_csv} holds no epoch yet")
    epochs = history[EPOCH].to_numpy()
    # Smallest epoch number among the rows after each row (infinity after the last one).
    later_minimum = np.append(np.minimum.accumulate(epochs[::-1])[::-1][1:], np.inf)
    return history[epochs < later_minimum].reset_index(drop=True)


def _main_metric(columns: Sequence[str]) -> str | None:
    """The training metric to plot beside the loss, or None if only the loss was logged."""
    metrics = [
        column
        for column in columns
        if column not in (EPOCH, LOSS, *LEARNING_RATE_COLUMNS) and not column.startswith(VALIDATION_PREFIX)
    ]
    preferred = [name for name in MAIN_METRICS if name in metrics]
    return (preferred or metrics or [None])[0]


def plot_training_curves(history_csv: str | PathLike, path: str | PathLike) -> Path:
    """Plots the loss and the main metric per epoch, training vs validation, and the learning rate.

    Panels: loss; the main metric (`accuracy`, else `auc`, else the first other metric logged)
    when one was logged; the learning rate when it changed during training. A validation curve is
    drawn where its `val_` column exists. Epochs are shown 1-based, as Keras prints them.

    Args:
        history_csv: a Keras CSVLogger file, possibly with repeated epochs from a resumed run.
        path: where to write the PNG.

    Returns:
        `path` as a Path.

    Raises:
        ValueError: as `load_history`, or if neither a loss nor a metric was logged.
    """
    history = load_history(history_csv)
    epochs = history[EPOCH] + 1
    learning_rate = next((column for column in LEARNING_RATE_COLUMNS if column in history.columns), None)
    panels = [LOSS] if LOSS in history.columns else []
    main_metric = _main_metric(history.columns)
    if main_metric:
        panels.append(main_metric)
    if not panels:
        raise ValueError(f"{history_csv} logs neither a loss nor a metric")
    if learning_rate and history[learning_rate].nunique() > 1:
        panels.append(learning_rate)

    figure = Figure(figsize=(5.0 * len(panels), 4.0), layout="constrained")
    for axes, name in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels, strict=True):
        axes.plot(epochs, history[name], marker="o", markersize=3, label="train")
        validation = VALIDATION_PREFIX + name
        if validation in history.columns:
            axes.plot(epochs, history[validation], marker="o", markersize=3, label="validation")
            if name == LOSS and history[validation].notna().any():
                best = history[validation].idxmin()
                axes.plot(
                    epochs[best],
                    history[validation][best],
                    "k*",
                    markersize=12,
                    label=f"best validation (epoch {epochs[best]})",
                )
        if name == learning_rate:
            axes.set_yscale("log")
        else:
            axes.legend()
        axes.set_title(name.replace("_", " "))
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
    figure.suptitle(f"Training curves ({len(history)} epochs)")
    return save_png(figure, path)


def plot_per_genre_f1(metrics: dict, path: str | PathLike) -> Path:
    """Horizontal bars of per-genre F1, best genre at the top, support in each label.

    Args:
        metrics: a dict returned by `genre_fusion.metrics.evaluate_predictions` (`per_genre`,
            `macro_f1`, `songs`, `label_mode` are read).
        path: where to write the PNG.

    Returns:
        `path` as a Path. Genres without songs in the split are drawn grey.
    """
    # barh draws the first item at the bottom: ascending order puts the best genre on top.
    ranked = sorted(metrics["per_genre"].items(), key=lambda item: item[1]["f1"])
    labels = [f"{genre} (n={entry['support']})" for genre, entry in ranked]
    f1_values = [entry["f1"] for _, entry in ranked]
    colours = ["lightgrey" if entry["support"] == 0 else "tab:blue" for _, entry in ranked]

    figure = Figure(figsize=(7.0, _figure_inches(len(ranked), extra=1.5)), layout="constrained")
    axes = figure.subplots()
    bars = axes.barh(range(len(ranked)), f1_values, color=colours)
    # A white box keeps each value readable where the macro-F1 line crosses it.
    axes.bar_label(
        bars,
        labels=["no songs" if entry["support"] == 0 else f"{entry['f1']:.2f}" for _, entry in ranked],
        padding=2,
        bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5},
    )
    axes.set_yticks(range(len(ranked)), labels=labels)
    axes.set_ylim(-0.6, len(ranked) - 0.4)
    axes.set_xlim(0.0, 1.1)  # room for the value labels of F1 = 1 bars
    axes.axvline(
        metrics["macro_f1"],
        color="black",
        linestyle="--",
        zorder=1.5,  # above the bars, below the value labels
        label=f"macro-F1 {metrics['macro_f1']:.3f}",
    )
    axes.legend(loc="lower right")
    axes.set_xlabel("F1")
    axes.set_title(f"Per-genre F1, {metrics['songs']} songs ({metrics['label_mode']}-label)")
    return save_png(figure, path)
