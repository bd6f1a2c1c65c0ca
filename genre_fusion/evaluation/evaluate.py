"""`python -m genre_fusion.evaluate --run RUN_DIR [--split test]`: score a trained run.

Reads the run's config.json and best model, predicts the split of the shards it was trained on
(or `--data` shards with the same genres and features), and writes under
``RUN_DIR/evaluation/SPLIT/``: `metrics.json` (see `genre_fusion.metrics.evaluate_predictions`),
`confusion_matrix.png` (single label), `per_genre_f1.png`; and ``RUN_DIR/training_curves.png``.
Both are added to the run directory's record of its entries (`genre_fusion.files.owned_outputs`), so
``train --overwrite`` may replace them. The metrics are also printed as a table.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from genre_fusion.data.pipeline import make_dataset
from genre_fusion.data.schema import parse_song
from genre_fusion.data.shards import SPLITS, ShardsError, ShardsMeta, read_meta, shard_files
from genre_fusion.evaluation.metrics import evaluate_predictions, format_metrics_table
from genre_fusion.evaluation.plots import plot_confusion_matrix, plot_per_genre_f1, plot_training_curves
from genre_fusion.evaluation.thresholds import choose_thresholds
from genre_fusion.files.owned_outputs import OutputsError, owned_outputs, record_outputs
from genre_fusion.runs.config import RunError, TrainConfig
from genre_fusion.runs.layout import (
    EVALUATION_DIR,
    HISTORY_FILE,
    LEGACY_RUN_ENTRIES,
    RUN_KIND,
    TRAINING_CURVES_FILE,
)
from genre_fusion.runs.loading import load_run, read_run_summary

METRICS_FILE = "metrics.json"
DEFAULT_BATCH_SIZE = 32
THRESHOLD_SPLIT = "val"  # where a multi-label model's decision thresholds are chosen
# The multi-label scores also reported under per-genre thresholds and at 0.5.
MULTI_LABEL_HEADLINE = ("example_accuracy", "example_f1", "subset_accuracy", "micro_f1", "macro_f1")

Predictions = tuple[np.ndarray, np.ndarray]  # probabilities and targets, both [songs, genres]


def splits_to_predict(split: str, label_mode: str) -> tuple[str, ...]:
    """The splits that scoring `split` needs: itself, and val for a multi-label model's thresholds."""
    return tuple(dict.fromkeys((THRESHOLD_SPLIT, split) if label_mode == "multi" else (split,)))


def predict_splits(
    run_dir: str | Path, splits: Sequence[str], data: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE
) -> tuple[dict[str, Predictions], TrainConfig]:
    """The run's best model on each of `splits` ({split: (probabilities, targets)}), loaded once.

    Raises `RunError` for a run without a model, `ShardsError` for shards that are missing, do not
    match the run, or cannot be read (naming the damaged shard file)."""
    config, model = load_run(run_dir, require_finished=False)
    if read_run_summary(run_dir) is None:
        print(f"warning: {run_dir} is unfinished; evaluating its best epoch so far", file=sys.stderr)
    shards = data or config.data
    meta = read_meta(shards)
    config.check_shards(meta, shards)
    predictions = {}
    for split in splits:
        dataset = make_dataset(shards, split, meta, config.model.modalities, batch_size, training=False)
        probabilities, targets = [], []
        batches = _readable_batches(dataset, shards, split, meta)
        total = math.ceil(meta.split_sizes[split] / batch_size)
        for inputs, batch_targets in tqdm(batches, total=total, desc=f"predict {split}", unit="batch"):
            probabilities.append(np.asarray(model.predict_on_batch(inputs), dtype=np.float32))
            targets.append(batch_targets.numpy())
        predictions[split] = (np.concatenate(probabilities), np.concatenate(targets))
    return predictions, config


def predict_split(
    run_dir: str | Path, split: str, data: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE
) -> tuple[np.ndarray, np.ndarray, TrainConfig]:
    """The run's best model on one split: probabilities and targets, both [songs, genres]; raises
    as `predict_splits`."""
    predictions, config = predict_splits(run_dir, (split,), data, batch_size)
    return *predictions[split], config


def score_split(
    predictions: dict[str, Predictions], split: str, genres: Sequence[str], label_mode: str
) -> dict:
    """`evaluate_predictions` of `split`; a multi-label model is scored at the thresholds chosen on
    the val predictions (`genre_fusion.evaluation.thresholds`): the headline at the global one,
    `with_per_genre_thresholds` and `at_threshold_0.5` beside it, and the thresholds under
    `thresholds`. `predictions` holds the splits of `splits_to_predict`. Raises `ValueError` for
    predictions that cannot be scored (e.g. NaN)."""
    probabilities, targets = predictions[split]
    if label_mode == "single":
        return evaluate_predictions(probabilities, targets, genres, label_mode)
    thresholds = choose_thresholds(*predictions[THRESHOLD_SPLIT], chosen_on=THRESHOLD_SPLIT)
    metrics = evaluate_predictions(probabilities, targets, genres, label_mode, thresholds.global_threshold)
    metrics["thresholds"] = thresholds.to_dict(genres)
    for key, threshold in (("with_per_genre_thresholds", thresholds.per_genre), ("at_threshold_0.5", 0.5)):
        other = evaluate_predictions(probabilities, targets, genres, label_mode, threshold)
        metrics[key] = {name: other[name] for name in MULTI_LABEL_HEADLINE}
    return metrics


def _readable_batches(
    dataset: tf.data.Dataset, shards: str | Path, split: str, meta: ShardsMeta
) -> Iterator[tuple[dict[str, tf.Tensor], tf.Tensor]]:
    """The batches of `dataset`; a read or parse failure becomes a `ShardsError` naming the file."""
    batches = iter(dataset)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except tf.errors.OpError as error:
            raise ShardsError(_unreadable_shards_message(shards, split, meta, error)) from error
        yield batch


def _unreadable_shards_message(
    shards: str | Path, split: str, meta: ShardsMeta, error: tf.errors.OpError
) -> str:
    """Why the `split` shards failed: the first file that fails alone (TensorFlow's message names
    no file), else the split as a whole (e.g. fewer songs than meta.json counts)."""
    rebuild = "rebuild the shards with `python -m data_prep build`"
    for path in shard_files(shards, split):
        songs = tf.data.TFRecordDataset(str(path)).map(lambda song: parse_song(song, meta.features))
        try:
            for _ in songs:
                pass
        except tf.errors.OpError as file_error:
            return f"shard {path} is damaged ({_tf_reason(file_error)}): {rebuild}"
    return f"the {split} shards of {shards} cannot be read ({_tf_reason(error)}): {rebuild}"


def _tf_reason(error: tf.errors.OpError) -> str:
    """The first line of a TensorFlow error without its graph-function and op decorations."""
    message = re.sub(r"\{\{[^}]*\}\}", "", error.message).split("[Op:")[0].strip()
    return message.splitlines()[0] if message else type(error).__name__


def _record(run_dir: Path, names: Sequence[str]) -> None:
    """Add `names` to the run directory's record of its entries, refusing (`RunError`) one that is
    there already without being recorded: a user's, which the record would hand to `train
    --overwrite`. A run trained before the record existed gets one that lists its training files
    too, so that `train --overwrite` still knows them as the run's own."""
    kind, recorded = owned_outputs(run_dir)
    if kind is None:
        names = [*names, *(name for name in LEGACY_RUN_ENTRIES if (run_dir / name).exists())]
    else:
        foreign = [name for name in names if (run_dir / name).exists() and name not in recorded]
        if foreign:
            raise RunError(
                f"{run_dir} holds {', '.join(foreign)}, which genre_fusion did not write: move it away "
                "(evaluate writes there)"
            )
    record_outputs(run_dir, RUN_KIND, names)


def evaluate_run(
    run_dir: str | Path, split: str = "test", data: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE
) -> dict:
    """Score one split of a run; writes metrics.json and the plots; returns the metrics.

    Raises as `predict_split`; `RunError` when the evaluation cannot be written, `OutputsError`
    when the run directory's record of its entries is damaged or of another kind."""
    needed = splits_to_predict(split, TrainConfig.load(run_dir).label_mode)
    predictions, config = predict_splits(run_dir, needed, data, batch_size)
    try:
        metrics = score_split(predictions, split, config.genres, config.label_mode)
    except ValueError as error:  # e.g. NaN probabilities of a diverged run
        raise RunError(f"cannot score {run_dir} on {split}: {error}") from error
    metrics["split"] = split
    run_dir = Path(run_dir)
    out = run_dir / EVALUATION_DIR / split
    history = run_dir / HISTORY_FILE
    try:
        _record(run_dir, [EVALUATION_DIR, TRAINING_CURVES_FILE] if history.is_file() else [EVALUATION_DIR])
        out.mkdir(parents=True, exist_ok=True)
        (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        if "confusion_matrix" in metrics:
            plot_confusion_matrix(
                np.array(metrics["confusion_matrix"]), config.genres, out / "confusion_matrix.png"
            )
        plot_per_genre_f1(metrics, out / "per_genre_f1.png")
        if history.is_file():
            try:
                plot_training_curves(history, run_dir / TRAINING_CURVES_FILE)
            except ValueError as error:  # the metrics stand without the curves
                print(f"warning: no {TRAINING_CURVES_FILE}: {error}", file=sys.stderr)
    except OSError as error:
        raise RunError(f"cannot write the evaluation into {run_dir}: {error}") from error
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m genre_fusion.evaluate", description=__doc__, allow_abbrev=False
    )
    parser.add_argument("--run", required=True, help="run directory of `python -m genre_fusion.train`")
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument("--data", help="shards to evaluate on (default: the run's own)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"songs per model call (default {DEFAULT_BATCH_SIZE})",
    )
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    try:
        metrics = evaluate_run(args.run, args.split, args.data, args.batch_size)
    except (RunError, ShardsError, OutputsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_metrics_table(metrics))
    print(f"metrics and plots in {Path(args.run) / EVALUATION_DIR / args.split}")
    return 0
