"""The run directory of a training run: where it is written, and whether it may be.

`prepare_run_dir` checks a --run before training changes anything, and records the entries
training writes there (`genre_fusion.files.owned_outputs`) before they exist.
"""

from __future__ import annotations

import os
from pathlib import Path

import tensorflow as tf

from genre_fusion.data.shards import ShardsMeta
from genre_fusion.files.owned_outputs import clear_outputs, foreign_entries, owned_outputs, record_outputs
from genre_fusion.runs.config import RunError, TrainConfig
from genre_fusion.runs.layout import (
    CONFIG_FILE,
    LEGACY_RUN_ENTRIES,
    RUN_FILE,
    RUN_KIND,
    TRAINING_OUTPUTS,
    WORKERS_DIR,
)
from genre_fusion.runs.loading import read_run_summary


def output_dir(run_dir: Path, strategy: tf.distribute.Strategy) -> Path:
    """The chief writes the run directory; other workers of a multi-worker run keep their own
    checkpoints and logs in a folder of their own inside it, so that no file has two writers."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type or _is_chief(resolver):
        return run_dir
    return run_dir / WORKERS_DIR / f"{resolver.task_type}-{resolver.task_id}"


def _is_chief(resolver) -> bool:
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (
        not has_chief and resolver.task_type == "worker" and resolver.task_id == 0
    )


def _check_writable(run_dir: Path) -> None:
    """`RunError` unless `run_dir` is a folder this process may write into, or can be made one."""
    existing = run_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise RunError(
            f"--run {run_dir} cannot be made: {existing} is a file, not a folder; choose another --run"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunError(f"--run {run_dir} cannot be written: {existing} is read-only; choose another --run")


def _holds_run_config(run_dir: Path) -> bool:
    """Whether `run_dir` has a config.json that loads as a `TrainConfig`."""
    try:
        TrainConfig.load(run_dir)
    except RunError:
        return False
    return True


def prepare_run_dir(config: TrainConfig, meta: ShardsMeta, run_dir: Path, overwrite: bool) -> None:
    """Check `run_dir` for the run of `config`, then record what training writes there.

    Refuses, changing nothing (`RunError`, `OutputsError`): a place that cannot be written; a
    folder that is not a run directory; a finished run, or an unfinished one of other shards or
    settings, unless `overwrite`. With `overwrite`, after every check, removes what the project
    wrote there and refuses a folder that holds anything else. A run directory made before the
    record of its entries existed owns `LEGACY_RUN_ENTRIES` when its config.json is a run's."""
    _check_writable(run_dir)
    marker_kind, _ = owned_outputs(run_dir)
    legacy = LEGACY_RUN_ENTRIES if _holds_run_config(run_dir) else ()
    if overwrite:
        clear_outputs(run_dir, RUN_KIND, legacy)
    elif (run_dir / CONFIG_FILE).is_file():
        previous = TrainConfig.load(run_dir)  # RunError for a config.json of something else
        if read_run_summary(run_dir) is not None:
            raise RunError(
                f"{run_dir} holds a finished run ({RUN_FILE}): choose another --run, or pass --overwrite "
                "to replace it"
            )
        try:
            previous.check_shards(meta, config.data)
        except RunError as error:
            raise RunError(f"{error} (another --run, or --overwrite to replace this run)") from None
        _check_same_settings(previous, config, run_dir)
    elif foreign_entries(run_dir, RUN_KIND, legacy):
        raise RunError(
            f"{run_dir} exists and is not a run directory (no {CONFIG_FILE}): choose a new or empty --run"
        )
    # Everything training may create, before it exists: a kill never leaves an unrecorded file.
    adopted = [name for name in legacy if (run_dir / name).exists()] if marker_kind is None else []
    record_outputs(run_dir, RUN_KIND, [*TRAINING_OUTPUTS, *adopted])


def _check_same_settings(previous: TrainConfig, config: TrainConfig, run_dir: Path) -> None:
    """An interrupted run resumes only with the settings it started with (paths may move)."""
    old, new = previous.to_dict(), config.to_dict()
    changed = [
        f"{key} {old[key]} -> {new[key]}"
        for key in new
        if key not in ("data", "run") and old.get(key) != new[key]
    ]
    if changed:
        raise RunError(
            f"{run_dir} holds an unfinished run with other settings ({'; '.join(changed)}): rerun with "
            "the same options to resume it, or pass --overwrite to start over"
        )
