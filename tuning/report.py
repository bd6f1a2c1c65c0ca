"""The files a search leaves for people and for training: best config, leaderboard, objective plot.

| path                | content                                                                  |
|---------------------|--------------------------------------------------------------------------|
| `best_hparams.json` | the best trial's `ModelConfig`, every field (`genre_fusion.train         |
|                     | --hparams` reads it)                                                     |
| `leaderboard.csv`   | one row per trial, best first: trial, status, the objective (its column  |
|                     | is named after it, e.g. ``val_accuracy``), best_epoch, one column per    |
|                     | hyperparameter, error (last line of a failed trial's error)              |
| `objective.png`     | the objective of each trial in the order they ran, and the best so far   |

Figures are drawn on an Agg canvas without `pyplot`, as in `genre_fusion.evaluation.plots`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from genre_fusion.evaluation.plots import DPI
from tuning.search import SearchResult

BEST_HPARAMS_FILE = "best_hparams.json"
LEADERBOARD_FILE = "leaderboard.csv"
OBJECTIVE_PLOT_FILE = "objective.png"
REPORT_FILES = (BEST_HPARAMS_FILE, LEADERBOARD_FILE, OBJECTIVE_PLOT_FILE)
PRINTED_ERROR_CHARACTERS = 60  # the printed table cuts errors; the CSV keeps their last line whole


def leaderboard(result: SearchResult) -> pd.DataFrame:
    """One row per trial, best objective first (lowest for a loss), unfinished trials last (in the
    order they ran)."""
    rows = [
        {
            "trial": trial.trial_id,
            "status": trial.status,
            result.objective: trial.objective,
            "best_epoch": trial.best_epoch,
            **trial.values,
        }
        for trial in result.trials
    ]
    # Explicit dtypes: a column of only unfinished trials would otherwise print None, not "-".
    table = pd.DataFrame(rows).astype({result.objective: "float64", "best_epoch": "Int64"})
    # Last, after every hyperparameter column (Hyperband adds some only to its later trials).
    table["error"] = [trial.error_line for trial in result.trials]
    # Stable sort: equal objectives, and the failed trials, stay in the order they ran.
    return table.sort_values(
        result.objective, ascending=result.direction == "min", na_position="last", kind="stable"
    ).reset_index(drop=True)


def format_leaderboard(table: pd.DataFrame) -> str:
    """`table` (a `leaderboard`) as aligned text; numbers with 4 significant digits, blanks as "-"."""
    # na_rep covers NaN only: the nullable integers of best_epoch would print <NA>.
    return (
        table.astype({"best_epoch": object})
        .fillna({"best_epoch": "-"})
        .to_string(
            index=False,
            na_rep="-",
            float_format=lambda value: f"{value:.4g}",
            max_colwidth=PRINTED_ERROR_CHARACTERS,
        )
    )


def plot_objective(result: SearchResult, path: Path) -> Path:
    """Draws each trial's objective (in the order the trials ran) and the best so far; failed trials
    are red crosses on the bottom edge. Returns `path`."""
    objectives = np.array([np.nan if trial.objective is None else trial.objective for trial in result.trials])
    # Keras Tuner numbers its trials 0, 1, ... as they start: the ids are the x axis, as in the leaderboard.
    numbers = np.array([int(trial.trial_id) for trial in result.trials])
    finished = ~np.isnan(objectives)
    better = np.fmin if result.direction == "min" else np.fmax
    best_so_far = better.accumulate(objectives)  # NaN until the first finished trial

    figure = Figure(figsize=(7.0, 4.0), layout="constrained")
    axes = figure.subplots()
    axes.plot(numbers[finished], objectives[finished], "o", label="trial")
    axes.step(numbers, best_so_far, where="post", color="black", label="best so far")
    if not finished.all():
        # Axes coordinates for y: the crosses stay on the edge whatever the objective's range.
        axes.plot(
            numbers[~finished],
            np.full((~finished).sum(), 0.02),
            "x",
            color="tab:red",
            transform=axes.get_xaxis_transform(),
            label="failed",
        )
    axes.set_xlabel("trial")
    axes.set_ylabel(result.objective)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend()
    best = f", best {best_so_far[-1]:.4f}" if finished.any() else ""
    axes.set_title(f"{result.settings.tuner} search: {len(objectives)} trials{best}")
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI)
    return path


def write_reports(result: SearchResult) -> dict[str, Path]:
    """Writes the files above into the search's output folder (best_hparams.json only when a trial
    finished); returns their paths by file name."""
    out = Path(result.settings.out)
    paths = {LEADERBOARD_FILE: out / LEADERBOARD_FILE, OBJECTIVE_PLOT_FILE: out / OBJECTIVE_PLOT_FILE}
    leaderboard(result).to_csv(paths[LEADERBOARD_FILE], index=False)
    plot_objective(result, paths[OBJECTIVE_PLOT_FILE])
    if result.best_config is not None:
        paths[BEST_HPARAMS_FILE] = out / BEST_HPARAMS_FILE
        paths[BEST_HPARAMS_FILE].write_text(
            json.dumps(result.best_config.to_dict(), indent=2) + "\n", encoding="utf-8"
        )
    return paths
