"""The build's own records in the output folder's `_progress/`, and what a rerun keeps of them.

`plan.json` holds the settings, written once the plan succeeded; one record per finished shard
holds a fingerprint of its songs (ids, artists, labels, paths, and each file's size and
modification time) and the shard file's size; `lock` keeps a second build out. A rerun with the
same settings keeps a shard only while its fingerprint and size still match and rebuilds the
rest, so after any interruption (kill -9 included) or a corrected source it ends with the same
files as an uninterrupted run; a rerun with other settings is refused, naming them.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

from data_prep.build_config import DERIVED_FEATURES
from data_prep.build_error import BuildError
from data_prep.plan import BuildPlan, file_state
from genre_fusion.files.atomic import write_atomically

PROGRESS_DIR = "_progress"
PLAN_FILE = "plan.json"
LOCK_FILE = "lock"


def _record_path(out: Path, shard_name: str) -> Path:
    return out / PROGRESS_DIR / f"{shard_name}.json"


def _shown(value) -> str:
    """A setting as a user types it."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "(none)"
    return str(value)


def check_settings(out: Path, settings: dict) -> None:
    """Refuse a folder whose plan.json records other settings, naming each one that differs."""
    plan_path = out / PROGRESS_DIR / PLAN_FILE
    if not plan_path.is_file():
        return
    previous = json.loads(plan_path.read_text(encoding="utf-8")).get("settings")
    if previous is None:
        raise BuildError(
            f"{out} holds a build of an earlier genre-fusion version: remove it or choose another --out"
        )
    previous = {key: value for key, value in previous.items() if key not in DERIVED_FEATURES}
    changes = [
        f"--{key.replace('_', '-')} {_shown(previous.get(key))} -> {_shown(settings.get(key))}"
        for key in [*settings, *(key for key in previous if key not in settings)]
        if previous.get(key) != settings.get(key)
    ]
    if changes:
        raise BuildError(
            f"{out} holds a build with other settings ({'; '.join(changes)}): rerun with its settings "
            "to resume it, or choose another --out"
        )


def write_settings(out: Path, settings: dict) -> None:
    """Record `settings` (BuildConfig.settings()) in plan.json, for `check_settings` of a rerun."""
    write_atomically(out / PROGRESS_DIR / PLAN_FILE, json.dumps({"settings": settings}) + "\n")


def write_shard_record(out: Path, shard_name: str, record: dict) -> None:
    """Record a finished shard: its split, ids, labels, rejections, fingerprint, size, statistics."""
    write_atomically(_record_path(out, shard_name), json.dumps(record) + "\n")


def kept_shards(out: Path, plan: BuildPlan) -> tuple[dict[str, dict], dict[str, int]]:
    """The records of finished shards that still match the plan, and why the others are rebuilt."""
    kept, rebuilt = {}, collections.Counter()
    for shard in plan.shards:
        record_path = _record_path(out, shard.name)
        if not record_path.is_file():
            continue  # never finished: built, not rebuilt
        record = json.loads(record_path.read_text())
        shard_state = file_state(out / shard.name)
        if record.get("fingerprint") != shard.fingerprint:
            rebuilt["songs or their files changed"] += 1
        elif shard_state is None:
            rebuilt["shard file missing"] += 1
        elif shard_state[0] != record.get("size"):
            rebuilt["shard file truncated or changed"] += 1
        elif "statistics" not in record:
            rebuilt["made before training statistics were recorded"] += 1
        else:
            kept[shard.name] = record
    return kept, dict(rebuilt)


def remove_stale_shards(out: Path, plan: BuildPlan) -> None:
    """Delete the shards (and records) of an earlier plan of this build that this plan has not."""
    planned = {shard.name for shard in plan.shards}
    for record_path in (out / PROGRESS_DIR).glob("*.tfrecord.json"):
        name = record_path.name.removesuffix(".json")
        if name not in planned:
            (out / name).unlink(missing_ok=True)
            record_path.unlink()
    for temporary in out.glob("*-of-*.tfrecord.tmp"):  # a killed run's unfinished shard
        temporary.unlink()
