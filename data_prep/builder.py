"""The shard builder: a song collection -> the shards directory of DESIGN.md.

`build_shards` takes the output folder (new, empty or its own, locked for the whole build), plans
the build (data_prep.plan), keeps the shards an earlier run finished (data_prep.progress) and
writes the others (data_prep.shard_writer), then finishes with the tables, the training
statistics and meta.json. Decoding threads read audio and lyrics (libsndfile, soxr and numpy
release the GIL, so threads use every core without copying waveforms between processes), at the
pretrained audio encoder's sample rate when there is one; the TensorFlow work (log-mel or the
audio encoder, principal words, text embeddings) runs in batches on the writing thread
(data_prep.featurizer), each song through each encoder once.
"""

from __future__ import annotations

import collections
import csv
import fcntl
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from data_prep.build_config import BuildConfig
from data_prep.build_error import BuildError, UselessBuild
from data_prep.featurizer import BATCH_SIZE, SongFeaturizer, load_audio_encoder, load_text_encoder
from data_prep.plan import NEEDED_SPLITS, TRAIN_SPLIT, BuildPlan, plan_build, read_source
from data_prep.progress import (
    LOCK_FILE,
    PROGRESS_DIR,
    check_settings,
    kept_shards,
    remove_stale_shards,
    write_settings,
)
from data_prep.shard_writer import write_shard
from data_prep.song_loader import DEFAULT_WORKERS, load_song
from data_prep.split import SPLIT_NAMES
from genre_fusion.data.shards import META_FILE, REJECTED_FILE, SPLITS_FILE, ShardsMeta
from genre_fusion.data.train_statistics import TrainStatistics
from genre_fusion.encoders.audio import AudioEncoder
from genre_fusion.features.audio import MIN_SECONDS, DecoderMessages
from genre_fusion.features.config import FeatureConfig

NOTES_FILE = "decoder-notes.log"
TOP_REASONS = 3
# Songs decoded ahead of the writer: the submission queue must outlast a whole featurized batch,
# or the decoders run dry while it is featurized (memory: about 2.6 MB a 30 s song at 22,050 Hz).
PREFETCH_SONGS = 3 * BATCH_SIZE


@dataclass(frozen=True)
class BuildSummary:
    meta: ShardsMeta
    seconds: float
    resumed_shards: int
    rebuilt_shards: dict[str, int] = field(default_factory=dict)  # why -> how many


def _refuse_foreign_folder(out: Path) -> None:
    """A build writes into a new or empty folder, or one that holds its own `_progress/`."""
    if out.exists() and not out.is_dir():
        raise BuildError(f"--out {out} is a file: expected a folder for the shards")
    if out.is_dir() and not (out / PROGRESS_DIR).is_dir() and any(out.iterdir()):
        raise BuildError(f"{out} exists and is not a shards directory of this build: choose an empty --out")


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on `out` for the whole build; a second build fails at once."""
    path = out / PROGRESS_DIR / LOCK_FILE
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            raise BuildError(
                f"another build is writing {out} (pid {owner}): wait for it to end or choose another --out"
            ) from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)  # a finished folder's files do not depend on who built it


def _bounded_map(pool: Executor, function: Callable, items: Iterable, ahead: int) -> Iterator:
    """`map` in order with at most `ahead` items in flight: memory stays flat."""
    pending: collections.deque = collections.deque()
    for item in items:
        pending.append(pool.submit(function, item))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _report_native_messages(native: DecoderMessages, out: Path) -> None:
    if native.summary():
        (out / NOTES_FILE).write_text(native.text, encoding="utf-8")
        print(f"note: {native.summary()} while decoding; saved in {out / NOTES_FILE}", file=sys.stderr)


def build_shards(
    config: BuildConfig,
    workers: int | None = None,
    progress: bool = True,
    audio_encoder: AudioEncoder | None = None,
) -> BuildSummary:
    """Run (or resume) a build; returns the written meta and timing.

    `audio_encoder`: the pretrained encoder `config.features` names, when the caller loaded it
    first (`data_prep.featurizer.load_audio_encoder`; the command line does, to check
    ``--sample-rate`` against it); loaded here when None.

    Raises `BuildError` (and `SourceError`, `SplitError`, `ModuleUnavailable`) naming the
    problem; a build that keeps no song, or no train or val song, raises `BuildError` after
    writing splits.csv and rejected.csv, without meta.json.
    """
    started = time.perf_counter()
    if config.features.clip_seconds < MIN_SECONDS:
        raise BuildError(
            f"--clip-seconds {config.features.clip_seconds}: every song shorter than {MIN_SECONDS} s is "
            f"rejected as too short, so every clip would be; use at least {MIN_SECONDS}"
        )
    out = Path(config.out)
    _refuse_foreign_folder(out)
    created = not out.exists()
    try:
        (out / PROGRESS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BuildError(
            f"--out {out}: cannot create the shards folder ({error.strerror}): expected a writable folder"
        ) from error
    try:
        with _locked(out):
            meta, kept, rebuilt = _build_locked(
                config, out, workers or DEFAULT_WORKERS, progress, audio_encoder
            )
    except BaseException:
        if created and _holds_only_the_lock(out):
            shutil.rmtree(out)  # a build refused before writing anything leaves no folder behind
        raise
    return BuildSummary(meta, time.perf_counter() - started, kept, rebuilt)


def _holds_only_the_lock(out: Path) -> bool:
    entries = sorted(path.relative_to(out) for path in out.rglob("*"))
    return entries == [Path(PROGRESS_DIR), Path(PROGRESS_DIR) / LOCK_FILE]


def _build_locked(
    config: BuildConfig, out: Path, workers: int, progress: bool, audio_encoder: AudioEncoder | None
) -> tuple[ShardsMeta, int, dict[str, int]]:
    """The build itself, in a folder this process holds: meta, shards kept, shards rebuilt by reason."""
    settings = config.settings()
    check_settings(out, settings)
    try:
        plan = plan_build(config, read_source(config))
    except UselessBuild as useless:
        rejected = [asdict(item) for item in useless.rejected]
        (out / META_FILE).unlink(missing_ok=True)
        _write_tables(out, [], rejected)
        raise _useless_error(str(useless), rejected, out) from None
    text_encoder, features = load_text_encoder(config.features)
    if audio_encoder is None:
        audio_encoder = load_audio_encoder(features)
    if audio_encoder is not None:
        # Decoding, the featurizer and meta.json all follow the encoder's rate and patches.
        features = _with_audio_encoder(features, audio_encoder)
    done, rebuilt = kept_shards(out, plan)
    pending = [shard for shard in plan.shards if shard.name not in done]
    remove_stale_shards(out, plan)
    write_settings(out, settings)
    if pending:
        (out / META_FILE).unlink(missing_ok=True)  # its presence would claim a complete set
        # TensorFlow starts its devices (and prints about them) here, not among the decoder's notes.
        tf.config.list_physical_devices()
        featurize = SongFeaturizer(features, text_encoder, audio_encoder)
        load = partial(
            load_song,
            sample_rate=features.sample_rate,
            clip_seconds=features.clip_seconds,
            require_lyrics=config.require_lyrics,
        )
    total = sum(len(shard.tasks) for shard in plan.shards)
    with (
        DecoderMessages() as native,
        tqdm(
            total=total,
            initial=total - sum(len(s.tasks) for s in pending),
            unit="song",
            desc="build",
            disable=not progress,
            file=native.terminal,
        ) as bar,
    ):
        if pending:
            with ThreadPoolExecutor(workers) as pool:
                results = _bounded_map(
                    pool, load, (t for s in pending for t in s.tasks), max(PREFETCH_SONGS, 4 * workers)
                )
                for shard in pending:
                    rejected_before = sum(len(record["rejected"]) for record in done.values())
                    done[shard.name] = write_shard(out, shard, results, featurize, bar, rejected_before)
    _report_native_messages(native, out)
    return _finish(config, features, plan, done, out), len(plan.shards) - len(pending), rebuilt


def _with_audio_encoder(features: FeatureConfig, encoder: AudioEncoder) -> FeatureConfig:
    """`features` filled in with the encoder's spec. Raises ValueError for an encoder other than
    the one `features` names (meta.json would misname it), and `BuildError` for a clip shorter
    than the encoder's first patch (it would give no embedding at all)."""
    spec = encoder.spec
    if spec.name != features.audio_encoder or features.audio_output_key not in ("", spec.output_key):
        raise ValueError(
            f"the audio encoder given ({spec.name}, output {spec.output_key}) is not the one the "
            f"settings name ({features.audio_encoder}, output {features.audio_output_key or 'its default'})"
        )
    if not spec.patches(round(features.clip_seconds * spec.sample_rate)):
        shortest = spec.first_patch_samples / spec.sample_rate
        raise BuildError(
            f"--clip-seconds {features.clip_seconds:g} is shorter than the first patch of --audio-encoder "
            f"{spec.name} ({shortest:g} s): use --clip-seconds {shortest:g} or more"
        )
    return features.with_audio_encoder(spec)


def _genre_counts(records: list[dict], split: str, genres: int) -> list[int]:
    counts = np.zeros(genres, dtype=int)
    for record in records:
        if record["split"] == split:
            for labels in record["labels"]:
                counts[labels] += 1
    return counts.tolist()


def _write_tables(out: Path, records: list[dict], rejected: list[dict]) -> None:
    """splits.csv (the kept songs) and rejected.csv (every other listed song, with its reason)."""
    with open(out / SPLITS_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", "split"])
        for record in records:
            writer.writerows([song_id, record["split"]] for song_id in record["ids"])
    with open(out / REJECTED_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "reason", "detail"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rejected)


def _useless_error(problem: str, rejected: list[dict], out: Path) -> BuildError:
    """The error of a build that cannot be trained on: the problem and its most frequent causes."""
    if not rejected:
        return BuildError(problem)
    counts = collections.Counter(item["reason"] for item in rejected).most_common(TOP_REASONS)
    top_reason = counts[0][0]
    example = next((item["detail"] for item in rejected if item["reason"] == top_reason), "")
    reasons = ", ".join(f"{reason} {count}" for reason, count in counts)
    return BuildError(
        f"{problem}: {len(rejected)} songs rejected, most for {reasons}"
        + (f" (first {top_reason}: {example})" if example else "")
        + f"; every rejected song is listed with its reason in {out / REJECTED_FILE}"
    )


def _genre_map_record(config: BuildConfig) -> dict[str, str]:
    """meta.json's `genre_map` and `genre_map_sha256`, as the settings record them."""
    settings = config.settings()
    return {key: settings[key] for key in ("genre_map", "genre_map_sha256") if key in settings}


def _finish(
    config: BuildConfig, features: FeatureConfig, plan: BuildPlan, done: dict, out: Path
) -> ShardsMeta:
    records = [done[shard.name] for shard in plan.shards]
    rejected = [asdict(item) for item in plan.rejected] + [item for r in records for item in r["rejected"]]
    _write_tables(out, records, rejected)
    split_sizes = {name: sum(len(r["ids"]) for r in records if r["split"] == name) for name in SPLIT_NAMES}
    empty = [name for name in NEEDED_SPLITS if not split_sizes[name]]
    if empty:
        sizes = ", ".join(f"{name} {count}" for name, count in split_sizes.items())
        raise _useless_error(f"the build leaves {' and '.join(empty)} without songs ({sizes})", rejected, out)
    statistics = TrainStatistics()
    for record in records:
        if record["split"] == TRAIN_SPLIT:
            statistics.merge(TrainStatistics.from_dict(record["statistics"]))
    statistics.write(out, audio_embeddings=features.uses_audio_embeddings)
    kept = {song_id for record in records for song_id in record["ids"]}
    meta = ShardsMeta(
        genres=plan.genres,
        label_mode=config.label_mode,
        features=features,
        split_sizes=split_sizes,
        shard_counts={name: sum(1 for s in plan.shards if s.split == name) for name in SPLIT_NAMES},
        genre_counts={name: _genre_counts(records, name, len(plan.genres)) for name in SPLIT_NAMES},
        rejected=dict(collections.Counter(item["reason"] for item in rejected).most_common()),
        lyrics_missing=len(plan.lyrics_missing & kept),
        source=config.source,
        seed=config.seed,
        protocol=config.protocol,
        protocol_overrides=config.protocol_overrides,
        **_genre_map_record(config),
    )
    meta.write(out)
    return meta
