"""Resuming a killed run: the backup of its last finished epoch, and its history trimmed to it.

The backup (`RunBackup`) holds the weights and optimizer state of the last finished epoch,
committed by an atomic rename of its metadata file; a resumed run trains the epochs left and ends
with the history an uninterrupted run has.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import keras
import pandas as pd

from genre_fusion.compat import KERAS_BACKUP_METADATA_FILE, KERAS_BACKUP_WEIGHTS_FILE
from genre_fusion.files.atomic import write_atomically
from genre_fusion.runs.config import RunError, TrainConfig
from genre_fusion.runs.layout import BACKUP_DIR, HISTORY_FILE
from genre_fusion.training.recipe import Monitor, Progress

# The backup's commit record: the epoch a resumed fit() begins with and the weights file to load;
# named as Keras' BackupAndRestore names its own, so the backups of earlier versions resume too.
BACKUP_METADATA_FILE = KERAS_BACKUP_METADATA_FILE
BACKUP_WEIGHTS_PATTERN = "epoch-{:05d}.weights.h5"



def read_backup(output_dir: Path) -> tuple[int, Path | None]:
    """The epoch the backup resumes with and its weights file; (0, None) without a backup."""
    metadata = output_dir / BACKUP_DIR / BACKUP_METADATA_FILE
    if not metadata.is_file():
        return 0, None
    try:
        record = json.loads(metadata.read_text(encoding="utf-8"))
        epoch = record["epoch"]
        weights = output_dir / BACKUP_DIR / record.get("weights", KERAS_BACKUP_WEIGHTS_FILE)
        if not weights.is_file():
            raise ValueError(f"{weights.name} is missing")
    except (ValueError, KeyError, TypeError) as error:
        raise RunError(
            f"the backup of the interrupted run in {output_dir} is damaged ({metadata}: {error}): "
            "pass --overwrite to start the run over"
        ) from None
    return epoch, weights


class RunBackup(keras.callbacks.Callback):
    """Keeps the state of the last finished epoch in `folder`: the weights (optimizer included)
    in a file of their own, committed by an atomic rename of the metadata naming it, so that a
    kill at any moment leaves the previous epoch's backup or this one, whole. Last of the epoch's
    callbacks: a kill before the commit reruns the epoch, whose history row and checkpoint are
    then written again."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = folder

    def on_epoch_end(self, epoch, logs=None):
        self.folder.mkdir(parents=True, exist_ok=True)
        weights = BACKUP_WEIGHTS_PATTERN.format(epoch + 1)
        self.model.save_weights(self.folder / weights, overwrite=True)
        record = {"epoch": epoch + 1, "weights": weights}
        write_atomically(self.folder / BACKUP_METADATA_FILE, json.dumps(record))
        for stale in self.folder.glob("*.weights.h5"):
            if stale.name != weights:
                stale.unlink()


def _trim_history(path: Path, start_epoch: int) -> pd.DataFrame | None:
    """Keep the rows of history.csv of the epochs before `start_epoch`, byte for byte (a kill after
    an epoch's row, before its backup, leaves rows too many); returns them. Without any (the file
    is missing, or empty as CSVLogger creates it), removes the file and returns None."""
    if not path.is_file():
        return None
    header, *rows = path.read_bytes().splitlines(keepends=True) or [b""]
    kept = [row for row in rows if _row_epoch(row) < start_epoch]
    if not kept:
        path.unlink()
        return None
    write_atomically(path, header + b"".join(kept))
    return pd.read_csv(path)


def _row_epoch(row: bytes) -> float:
    """The epoch of a history row; infinity for a row cut short by a kill."""
    epoch = row.split(b",", 1)[0]
    return int(epoch) if epoch.isdigit() and row.endswith(b"\n") else math.inf


def resume_progress(output_dir: Path, monitor: Monitor) -> Progress:
    """The epoch the backup resumes with, and the best epoch by `monitor` in history.csv, trimmed
    to the epochs the backup holds."""
    start_epoch, _ = read_backup(output_dir)
    history = _trim_history(output_dir / HISTORY_FILE, start_epoch)
    if history is None:
        return Progress(start_epoch)
    if monitor.name not in history:
        raise RunError(
            f"{output_dir / HISTORY_FILE} has no {monitor.name}, which this version selects epochs by: "
            "pass --overwrite to start the run over"
        )
    best = monitor.best_row(history[monitor.name])
    if best is None:
        return Progress(start_epoch)
    return Progress(start_epoch, int(history.loc[best, "epoch"]), float(history.loc[best, monitor.name]))


def training_left(progress: Progress, config: TrainConfig) -> bool:
    """Whether the run has epochs to train: not at its last epoch, not stopped early already."""
    if progress.start_epoch >= config.epochs:
        return False
    waited = progress.start_epoch - 1 - progress.best_epoch
    return progress.best_value is None or progress.start_epoch < 2 or waited < config.patience
