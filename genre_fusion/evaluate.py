"""`python -m genre_fusion.evaluate --run RUN_DIR [--split test]`: score a trained run.

Reads the run's config.json and best model, predicts the split of the shards it was trained on
(or `--data` shards with the same genres and features), and writes under
``RUN_DIR/evaluation/SPLIT/``: `metrics.json` (see `genre_fusion.metrics.evaluate_predictions`),
`confusion_matrix.png` (single label), `per_genre_f1.png`; and ``RUN_DIR/training_curves.png``.
The metrics are also printed as a table.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
from tqdm.auto import tqdm

from genre_fusion import model as _registered_layers  # noqa: F401  (custom layers for load_model)
from genre_fusion.dataset import make_dataset
from genre_fusion.metrics import evaluate_predictions, format_metrics_table
from genre_fusion.plots import plot_confusion_matrix, plot_per_genre_f1, plot_training_curves
from genre_fusion.shards import SPLITS, ShardsError, read_meta
from genre_fusion.train_config import HISTORY_FILE, MODEL_FILE, RunError, TrainConfig, read_run_summary

EVALUATION_DIR = "evaluation"
METRICS_FILE = "metrics.json"
DEFAULT_BATCH_SIZE = 32


def predict_split(
    run_dir: str | Path, split: str, data: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE
) -> tuple[np.ndarray, np.ndarray, TrainConfig]:
    """The run's best model on one split: probabilities and targets, both [songs, genres]."""
    config = TrainConfig.load(run_dir)
    model_path = Path(run_dir) / MODEL_FILE
    if not model_path.is_file():
        raise RunError(f"{model_path} is missing: train the run first (`python -m genre_fusion.train`)")
    if read_run_summary(run_dir) is None:
        print(f"warning: {run_dir} is unfinished; evaluating its best epoch so far", file=sys.stderr)
    shards = data or config.data
    meta = read_meta(shards)
    config.check_shards(meta, shards)
    dataset = make_dataset(shards, split, meta, config.model.modalities, batch_size, training=False)
    model = keras.saving.load_model(model_path)

    probabilities, targets = [], []
    batches = math.ceil(meta.split_sizes[split] / batch_size)
    for inputs, batch_targets in tqdm(dataset, total=batches, desc=f"predict {split}", unit="batch"):
        probabilities.append(np.asarray(model.predict_on_batch(inputs), dtype=np.float32))
        targets.append(batch_targets.numpy())
    return np.concatenate(probabilities), np.concatenate(targets), config


def evaluate_run(
    run_dir: str | Path, split: str = "test", data: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE
) -> dict:
    """Score one split of a run; writes metrics.json and the plots; returns the metrics."""
    probabilities, targets, config = predict_split(run_dir, split, data, batch_size)
    metrics = evaluate_predictions(probabilities, targets, config.genres, config.label_mode)
    metrics["split"] = split
    out = Path(run_dir) / EVALUATION_DIR / split
    out.mkdir(parents=True, exist_ok=True)
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    if "confusion_matrix" in metrics:
        plot_confusion_matrix(
            np.array(metrics["confusion_matrix"]), config.genres, out / "confusion_matrix.png"
        )
    plot_per_genre_f1(metrics, out / "per_genre_f1.png")
    history = Path(run_dir) / HISTORY_FILE
    if history.is_file():
        plot_training_curves(history, Path(run_dir) / "training_curves.png")
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genre_fusion.evaluate", description=__doc__)
    parser.add_argument("--run", required=True, help="run directory of `python -m genre_fusion.train`")
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument("--data", help="shards to evaluate on (default: the run's own)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    args = parser.parse_args(argv)
    try:
        metrics = evaluate_run(args.run, args.split, args.data, args.batch_size)
    except (RunError, ShardsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_metrics_table(metrics))
    print(f"metrics and plots in {Path(args.run) / EVALUATION_DIR / args.split}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
