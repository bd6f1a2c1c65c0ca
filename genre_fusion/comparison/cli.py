"""`python -m genre_fusion.compare`: audio-only, lyrics-only and each fusion, trained the same way on
the same shards over several seeds, with intervals, beside a paper's figures.

    python -m genre_fusion.compare --data SHARDS --out DIR [--models audio,lyrics,concat,gated,attention]
        [--seeds 3] [--epochs 12] [--bootstrap 1000] [--overwrite] [train flags...]

Each model is trained once per seed (0 .. N-1) with `python -m genre_fusion.train`'s recipe (any
other flag, e.g. ``--batch-size 64`` or ``--class-weights``, goes to every run) and scored on the
test split as `python -m genre_fusion.evaluate` scores it (a multi-label model at thresholds
chosen on val). DIR receives:

- `runs/MODEL-seedS/`: the run directories;
- `results.csv`: one row per run (model, seed, test songs, each headline score);
- `summary.md` and `summary.csv`: per model, the mean ± sample standard deviation over the seeds
  (training variance) and the 95% percentile bootstrap interval of that mean over the test songs
  (test-set sampling: `--bootstrap` resamples, seed 0), and, when the shards were built with a
  `--protocol` whose paper reports figures, those figures beside them;
- `comparison.png`; `comparison.json` (the settings of the last command).

Rerunning the command resumes: finished runs are kept, an interrupted one resumes. `--models` and
`--seeds` only choose the runs, so a rerun may add models or seeds (or tabulate fewer) and trains
only what is missing; the settings that decide a run (shards, epochs, training flags) must match,
or the rerun is refused unless `--overwrite`, which removes only what the comparison wrote.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from genre_fusion.comparison.models import DEFAULT_MODELS, ComparedModel, parse_models
from genre_fusion.comparison.plot import plot_comparison
from genre_fusion.comparison.song_scores import HEADLINES, SongScores
from genre_fusion.comparison.summary import ModelSummary, markdown_table, summarize, summary_csv
from genre_fusion.data.shards import ShardsMeta, read_meta
from genre_fusion.evaluation.evaluate import predict_splits, score_split, splits_to_predict
from genre_fusion.evaluation.protocols import PROTOCOLS, Protocol
from genre_fusion.files.atomic import write_atomically
from genre_fusion.files.owned_outputs import OutputsError, clear_outputs, foreign_entries, record_outputs
from genre_fusion.interruption import INTERRUPTED_EXIT_CODE, on_interrupt
from genre_fusion.runs.config import RunError
from genre_fusion.runs.loading import read_run_summary
from genre_fusion.training.cli import main as train_main
from genre_fusion.training.cli import parse_train_args, unknown_train_options

COMPARISON_KIND = "comparison"
SETTINGS_FILE = "comparison.json"
RUNS_DIR = "runs"
RESULTS_FILE = "results.csv"
SUMMARY_MARKDOWN, SUMMARY_CSV, PLOT_FILE = "summary.md", "summary.csv", "comparison.png"
OUTPUTS = (SETTINGS_FILE, RUNS_DIR, RESULTS_FILE, SUMMARY_MARKDOWN, SUMMARY_CSV, PLOT_FILE)
TEST_SPLIT = "test"
BOOTSTRAP_SEED = 0
DEFAULT_SEEDS, DEFAULT_EPOCHS, DEFAULT_RESAMPLES = 3, 12, 1000
RUN_SETTINGS = ("data", "epochs", "train_flags")  # what decides a run, beyond its model and seed
# What the comparison sets for each run itself.
OWN_TRAIN_FLAGS = ("--data", "--run", "--seed", "--epochs", "--modalities", "--fusion", "--overwrite")


class ComparisonError(ValueError):
    """A comparison that cannot run; the message names the problem and the fix."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m genre_fusion.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--data", required=True, help="shards directory of `python -m data_prep build`")
    parser.add_argument("--out", required=True, type=Path, help="folder for the runs and the tables")
    parser.add_argument(
        "--models", default=",".join(DEFAULT_MODELS), help=f"comma-separated, of {', '.join(DEFAULT_MODELS)}"
    )
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="training seeds per model: 0 .. N-1")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="most epochs of each run")
    parser.add_argument(
        "--bootstrap", type=int, default=DEFAULT_RESAMPLES, help="bootstrap resamples of the test songs"
    )
    parser.add_argument("--overwrite", action="store_true", help="start over (removes only what it wrote)")
    return parser


def run_name(model: ComparedModel, seed: int) -> str:
    return f"{model.name}-seed{seed}"


def _checked_meta(data: str) -> ShardsMeta:
    meta = read_meta(data)
    if not meta.split_sizes.get(TEST_SPLIT):
        raise ComparisonError(
            f"{data} has no {TEST_SPLIT} songs: rebuild the shards with a test fraction (--split 0.8,0.1,0.1)"
        )
    return meta


def _prepare_out(out: Path, settings: dict, overwrite: bool) -> None:
    """A new folder, or this comparison's own with the same settings (resumed); `--overwrite` clears
    an earlier comparison. Raises `ComparisonError` (other settings) and `OutputsError` (foreign
    files)."""
    if out.exists() and not out.is_dir():
        raise ComparisonError(f"--out {out} is a file: expected a folder for the comparison")
    foreign = foreign_entries(out, COMPARISON_KIND) if out.is_dir() else []
    if foreign:
        raise OutputsError(
            f"--out {out} holds {', '.join(foreign[:5])}, which the comparison did not write: "
            "choose a new folder"
        )
    previous_path = out / SETTINGS_FILE
    if previous_path.is_file() and not overwrite:
        previous = json.loads(previous_path.read_text(encoding="utf-8"))
        changed = [
            f"{key} {previous.get(key)!r} -> {settings[key]!r}"
            for key in RUN_SETTINGS
            if previous.get(key) != settings[key]
        ]
        if changed:
            raise ComparisonError(
                f"{out} holds a comparison with other settings ({'; '.join(changed)}): rerun with its "
                "settings to resume it, use another --out, or --overwrite to start over"
            )
    if overwrite:
        clear_outputs(out, COMPARISON_KIND)
    record_outputs(out, COMPARISON_KIND, OUTPUTS)
    write_atomically(previous_path, json.dumps(settings, indent=2) + "\n")


def _check_train_flags(train_flags: list[str]) -> None:
    """The flags passed on to training, checked by training's own parser before any work."""
    own = [flag for flag in train_flags if flag.split("=")[0] in OWN_TRAIN_FLAGS]
    if own:
        raise ComparisonError(
            f"{', '.join(own)}: the comparison sets these for each run "
            "(from --models, --seeds, --epochs, --data and --out)"
        )
    required = ["--data", "-", "--run", "-"]
    unknown = unknown_train_options([*required, *train_flags])
    if unknown:
        raise ComparisonError(
            f"unknown option {', '.join(unknown)}: neither the comparison's (--help lists them) nor "
            "`python -m genre_fusion.train`'s, to which the comparison passes its other options"
        )
    parse_train_args([*required, *train_flags])  # their values, checked by training's own parser


def _train(
    run: Path, model: ComparedModel, seed: int, epochs: int, train_flags: list[str], data: str
) -> None:
    """Train (or resume) one run; a finished run is kept as it is."""
    if read_run_summary(run) is not None:
        print(f"{run.name}: finished earlier, kept")
        return
    args = ["--data", data, "--run", str(run), "--seed", str(seed), "--epochs", str(epochs)]
    code = train_main([*args, *model.train_flags(), *train_flags])
    if code == INTERRUPTED_EXIT_CODE:  # training said what it kept; the comparison resumes too
        raise KeyboardInterrupt
    if code:
        raise ComparisonError(f"training {run.name} failed (exit {code}); its message is above")


def _score(run: Path, meta: ShardsMeta) -> tuple[dict, SongScores]:
    """The run's test metrics (as evaluate computes them) and its per-song counts at the same decisions."""
    predictions, config = predict_splits(run, splits_to_predict(TEST_SPLIT, meta.label_mode))
    metrics = score_split(predictions, TEST_SPLIT, config.genres, config.label_mode)
    threshold = metrics.get("thresholds", {}).get("global", 0.5)
    return metrics, SongScores.of(*predictions[TEST_SPLIT], meta.label_mode, threshold)


def _results_csv(rows: list[tuple[ComparedModel, int, dict]], label_mode: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = HEADLINES[label_mode]
    writer.writerow(["model", "seed", "test_songs", *names])
    for model, seed, metrics in rows:
        writer.writerow([model.name, seed, metrics["songs"], *(f"{metrics[name]:.6f}" for name in names)])
    return out.getvalue()


def _protocol_note(meta: ShardsMeta, protocol: Protocol | None) -> str:
    if protocol is None or not protocol.reported:
        return f"shards without a published protocol ({meta.protocol or 'none recorded'}): no paper figures"
    overridden = ", ".join("--" + key.replace("_", "-") for key in meta.protocol_overrides)
    return f"protocol {protocol.name} ({protocol.source})" + (
        f"; overridden here: {overridden}, so the paper's figures are not like for like" if overridden else ""
    )


def compare(
    data: str,
    out: Path,
    models: list[ComparedModel],
    seeds: int,
    epochs: int,
    resamples: int,
    train_flags: list[str],
    overwrite: bool = False,
) -> list[ModelSummary]:
    """Train, score and summarise every model and seed; writes DIR's files (see the module); returns
    one summary per model. Raises `ComparisonError`, `ShardsError`, `RunError`, `OutputsError`."""
    meta = _checked_meta(data)
    _check_train_flags(train_flags)
    settings = {
        "data": str(Path(data).resolve()), "models": [model.name for model in models], "seeds": seeds,
        "epochs": epochs, "bootstrap": resamples, "train_flags": train_flags,
    }  # fmt: skip
    _prepare_out(out, settings, overwrite)
    protocol = PROTOCOLS.get(meta.protocol)
    total, results, summaries = len(models) * seeds, [], []
    started = time.perf_counter()
    for model in models:
        song_scores = {}
        for seed in range(seeds):
            run = out / RUNS_DIR / run_name(model, seed)
            elapsed = time.perf_counter() - started
            print(f"[{len(results) + 1}/{total}] {model.label}, seed {seed} ({elapsed:.0f} s so far)")
            _train(run, model, seed, epochs, train_flags, data)
            metrics, song_scores[seed] = _score(run, meta)
            results.append((model, seed, metrics))
        summaries.append(summarize(model, song_scores, resamples, BOOTSTRAP_SEED, protocol))

    table = markdown_table(summaries, protocol)
    caption = (
        f"{len(summaries)} models × {seeds} seeds, {epochs} epochs, test split of {data} "
        f"({summaries[0].songs} songs); mean ± sd over seeds [95% bootstrap interval, {resamples} "
        f"resamples]; {_protocol_note(meta, protocol)}"
    )
    write_atomically(out / RESULTS_FILE, _results_csv(results, meta.label_mode))
    write_atomically(out / SUMMARY_CSV, summary_csv(summaries))
    write_atomically(out / SUMMARY_MARKDOWN, f"{caption}\n\n{table}\n")
    plot_comparison(summaries, protocol, out / PLOT_FILE)
    print(f"\n{caption}\n\n{table}\n\nin {out}: {', '.join(OUTPUTS[2:])}")
    return summaries


@on_interrupt("finished runs are kept; rerun the same command to resume the comparison")
def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, train_flags = parser.parse_known_args(argv)
    for option in ("seeds", "epochs", "bootstrap"):
        if getattr(args, option) < 1:
            parser.error(f"--{option} must be at least 1, got {getattr(args, option)}")
    try:
        models = parse_models(args.models)
        summary = (args.seeds, args.epochs, args.bootstrap, train_flags, args.overwrite)
        compare(args.data, args.out, models, *summary)
    except (ValueError, RunError, OutputsError) as error:  # ComparisonError and ShardsError are ValueErrors
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot write --out {args.out}: {error}", file=sys.stderr)
        return 2
    return 0
