"""The layout of a run directory: the names of what training and evaluation write there.

A run directory holds:

| path                 | written by                   | content                                        |
|----------------------|------------------------------|------------------------------------------------|
| `.genre_fusion.json` | start of training            | the entries the project wrote here             |
|                      |                              | (`genre_fusion.files.owned_outputs`, kind ``run``)   |
| `config.json`        | start of training            | `TrainConfig`, with the shards' genres, label  |
|                      |                              | mode and `FeatureConfig`                       |
| `model.keras`        | `ModelCheckpoint`            | the model of the best epoch by the run's       |
|                      |                              | monitor (`genre_fusion.training.recipe`)       |
| `history.csv`        | `CSVLogger`                  | one row per finished epoch (``epoch`` counts   |
|                      |                              | from 0)                                        |
| `logs/`              | `TensorBoard`                | training curves                                |
| `backup/`            | `training.resume.RunBackup`  | state of the last finished epoch, for          |
|                      |                              | resuming; removed when the run finishes        |
| `run.json`           | end of training              | ``{"finished": true, ...}``, the monitor and   |
|                      |                              | the best epoch's metrics; its presence marks a |
|                      |                              | finished run                                   |
| `evaluation/`,       | `genre_fusion.evaluate`      | metrics and plots per split; training curves   |
| `training_curves.png`|                              |                                                |

`config.json` alone is enough to rebuild the model and to read the shards it was trained on
(`genre_fusion.runs.config.TrainConfig`).
"""

from __future__ import annotations

from genre_fusion.files.atomic import TEMPORARY_SUFFIX

CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
LOGS_DIR = "logs"
BACKUP_DIR = "backup"
RUN_FILE = "run.json"
RUN_ARTIFACTS = (CONFIG_FILE, MODEL_FILE, HISTORY_FILE, LOGS_DIR, BACKUP_DIR, RUN_FILE)
RUN_KIND = "run"  # the kind of a run directory's record of its entries (`owned_outputs`)
EVALUATION_DIR = "evaluation"
TRAINING_CURVES_FILE = "training_curves.png"
# Folder of a multi-worker run where the non-chief workers keep their own logs and backups.
WORKERS_DIR = "workers"
# What training writes, the files it renames into place included.
RENAMED_INTO_PLACE = (CONFIG_FILE, HISTORY_FILE, RUN_FILE)
TRAINING_OUTPUTS = (*RUN_ARTIFACTS, *(name + TEMPORARY_SUFFIX for name in RENAMED_INTO_PLACE))
# What a run directory made before `owned_outputs` existed may hold: a run whose config.json loads
# as a `TrainConfig` owns these.
LEGACY_RUN_ENTRIES = (*TRAINING_OUTPUTS, WORKERS_DIR, EVALUATION_DIR, TRAINING_CURVES_FILE)
