"""The comparison as a PNG: per score, each model's seed mean with its 95% bootstrap interval, the
seeds' own values as dots, and the paper's reported figure as a cross where there is one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from genre_fusion.comparison.summary import SCORE_NAMES, ModelSummary
from genre_fusion.evaluation.plots import DPI, save_png
from genre_fusion.evaluation.protocols import Protocol

PANEL_INCHES = (0.9, 4.0)  # width per model, height


def plot_comparison(summaries: list[ModelSummary], protocol: Protocol | None, path: Path) -> Path:
    """Writes the figure to `path` (PNG); returns it."""
    names = list(summaries[0].per_seed)
    width = max(4.0, PANEL_INCHES[0] * len(summaries) + 1.5)
    figure = Figure(figsize=(width * len(names), PANEL_INCHES[1] + 1.2), dpi=DPI, layout="constrained")
    positions = np.arange(len(summaries))
    for axes, name in zip(figure.subplots(1, len(names), squeeze=False)[0], names, strict=True):
        means = np.array([s.mean[name] for s in summaries])
        low, high = (np.array([s.interval[name][side] for s in summaries]) for side in (0, 1))
        axes.bar(positions, means, color="#7aa6d6", yerr=[means - low, high - means], capsize=4)
        for position, summary in zip(positions, summaries, strict=True):
            values = summary.per_seed[name]
            axes.plot(np.full(len(values), position), values, "o", color="#1f3b5c", markersize=3)
            if name in summary.reported:
                axes.plot(position, summary.reported[name], "x", color="#c0392b", markersize=9, mew=2)
        axes.set_xticks(positions, [s.model.label for s in summaries], rotation=30, ha="right")
        axes.set_ylim(0, 1)
        axes.set_title(f"test {SCORE_NAMES[name]}")
        axes.grid(axis="y", alpha=0.3)
    seeds = ", ".join(sorted({str(len(s.seeds)) for s in summaries}))
    caption = f"bars: mean over {seeds} seeds, 95% bootstrap interval; dots: each seed"
    if protocol and any(s.reported for s in summaries):
        caption += f"; ×: reported by {protocol.source}"
    figure.suptitle(caption, fontsize=9)
    return save_png(figure, path)
