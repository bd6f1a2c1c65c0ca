"""A comparison's results: each model's scores over seeds (mean ± sd) with bootstrap intervals, as
markdown and CSV, beside a paper's reported figures when the shards carry its protocol."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

from genre_fusion.comparison.models import ComparedModel
from genre_fusion.comparison.song_scores import SongScores, seed_mean_interval
from genre_fusion.evaluation.protocols import Protocol

SCORE_NAMES = {
    "accuracy": "accuracy",
    "macro_f1": "macro-F1",
    "example_accuracy": "example-based accuracy",
    "example_f1": "example-based F1",
    "micro_f1": "micro-F1",
}
CONFIDENCE = 0.95
CSV_COLUMNS = (
    "model", "kind", "score", "mean", "sd", "ci_low", "ci_high", "seeds", "test_songs", "per_seed",
    "reported",
)  # fmt: skip


@dataclass(frozen=True)
class ModelSummary:
    """One model's test scores: `per_seed` {score: [seeds]}, their `mean` and `sd` (sample standard
    deviation, None for one seed), the bootstrap `interval` of the mean {score: (low, high)}, and
    the paper's `reported` {score: value} for this kind of model (empty without a protocol)."""

    model: ComparedModel
    seeds: tuple[int, ...]
    songs: int
    per_seed: dict[str, list[float]]
    interval: dict[str, tuple[float, float]]
    reported: dict[str, float]

    @property
    def mean(self) -> dict[str, float]:
        return {name: float(np.mean(values)) for name, values in self.per_seed.items()}

    @property
    def sd(self) -> dict[str, float | None]:
        return {
            name: float(np.std(values, ddof=1)) if len(values) > 1 else None
            for name, values in self.per_seed.items()
        }


def summarize(
    model: ComparedModel,
    runs: dict[int, SongScores],
    resamples: int,
    bootstrap_seed: int,
    protocol: Protocol | None,
) -> ModelSummary:
    """The summary of one model's runs ({seed: its test SongScores}) over `resamples` bootstrap
    resamples of the test songs."""
    scored = {
        seed: {name: float(value[0]) for name, value in run.scores(np.ones(run.songs)).items()}
        for seed, run in runs.items()
    }
    names = next(iter(scored.values()))
    per_seed = {name: [scored[seed][name] for seed in runs] for name in names}
    interval = seed_mean_interval(list(runs.values()), resamples, bootstrap_seed, CONFIDENCE)
    reported = protocol.reported.get(model.kind, {}) if protocol else {}
    songs = next(iter(runs.values())).songs
    return ModelSummary(model, tuple(runs), songs, per_seed, interval, reported)


def format_score(summary: ModelSummary, name: str) -> str:
    """'0.612 ± 0.021 [0.540, 0.680]': the mean over seeds, their sd, the 95% bootstrap interval."""
    sd = summary.sd[name]
    low, high = summary.interval[name]
    spread = f" ± {sd:.3f}" if sd is not None else ""
    return f"{summary.mean[name]:.3f}{spread} [{low:.3f}, {high:.3f}]"


def markdown_table(summaries: list[ModelSummary], protocol: Protocol | None) -> str:
    """One row per model: seeds, test songs, each score as `format_score`, then the paper's figures."""
    names = list(summaries[0].per_seed)
    reported = [name for name in names if protocol and any(name in s.reported for s in summaries)]
    header = ["model", "seeds", "test songs", *(SCORE_NAMES[name] for name in names)]
    header += [f"{protocol.source}: {SCORE_NAMES[name]}" for name in reported] if protocol else []
    rows = [
        [s.model.label, str(len(s.seeds)), str(s.songs), *(format_score(s, name) for name in names)]
        + [f"{s.reported[name]:.3f}" if name in s.reported else "–" for name in reported]
        for s in summaries
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def summary_csv(summaries: list[ModelSummary]) -> str:
    """Long format, one row per model and score: mean, sd, interval, the seeds' values, reported."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s in summaries:
        for name, values in s.per_seed.items():
            sd = s.sd[name]
            writer.writerow(
                [
                    s.model.name, s.model.kind, name, f"{s.mean[name]:.6f}",
                    "" if sd is None else f"{sd:.6f}",
                    f"{s.interval[name][0]:.6f}", f"{s.interval[name][1]:.6f}", len(s.seeds), s.songs,
                    ";".join(f"{value:.6f}" for value in values),
                    f"{s.reported[name]:.3f}" if name in s.reported else "",
                ]
            )  # fmt: skip
    return out.getvalue()
