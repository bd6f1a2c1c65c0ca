"""The shard builder: a song collection -> the shards directory of DESIGN.md.

Planning (selection, vocabulary, labels, split, shard assignment) is deterministic from the
settings, the seed and the files listed; what a file's existence and size tell (missing or empty
audio, and under `--require-lyrics` missing or empty lyrics) is rejected before the vocabulary
and the split, so no genre and no split is left without the songs planned for it. Decoding
threads read audio and lyrics (libsndfile, soxr and numpy release the GIL, so threads use every
core without copying waveforms between processes); the TensorFlow work (log-mel, principal
words, text embeddings) runs in batches, and each shard is written under a temporary name,
renamed when complete.

The output folder holds the build's own records in `_progress/`: `plan.json` (the settings,
written once the plan succeeded), one record per finished shard with a fingerprint of its songs
(ids, artists, labels, paths, and each file's size and modification time) and the shard file's
size, and the lock that keeps a second build out. A rerun with the same settings keeps a shard
only while its fingerprint and size still match and rebuilds the rest, so after any interruption
(kill -9 included) or a corrected source it ends with the same files as an uninterrupted run; a
rerun with other settings is refused, naming them.
"""

from __future__ import annotations

import collections
import csv
import fcntl
import hashlib
import json
import os
import shutil
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm.auto import tqdm

from data_prep.labels import DEFAULT_TOP_GENRES, assign_labels, build_vocabulary, drop_unused_genres
from data_prep.song_loader import (
    DEFAULT_WORKERS,
    LoadedSong,
    Rejection,
    SongTask,
    load_song,
)
from data_prep.sources import SourceError, read_manifest, read_music4all
from data_prep.split import SPLIT_NAMES, SplitError, split_by_artist
from genre_fusion.data.schema import FORMAT_VERSION, SongRecord, serialize_song
from genre_fusion.data.shards import META_FILE, REJECTED_FILE, SPLITS_FILE, ShardsMeta, shard_name
from genre_fusion.data.train_statistics import TrainStatistics
from genre_fusion.features.audio import MIN_SECONDS, DecoderMessages
from genre_fusion.features.config import FeatureConfig
from genre_fusion.features.log_mel import LogMelSpectrogram
from genre_fusion.features.principal_words import principal_words
from genre_fusion.files.atomic import write_atomically

PROGRESS_DIR = "_progress"
PLAN_FILE = "plan.json"
LOCK_FILE = "lock"
NOTES_FILE = "decoder-notes.log"
TOP_REASONS = 3
TRAIN_SPLIT = "train"
NEEDED_SPLITS = (TRAIN_SPLIT, "val")  # training fits on train and picks its best epoch on val
BATCH_SIZE = 16
# Songs decoded ahead of the writer: the submission queue must outlast a whole featurized batch,
# or the decoders run dry while log-mels are computed (memory: about 2.6 MB a 30 s song).
PREFETCH_SONGS = 3 * BATCH_SIZE


class BuildError(ValueError):
    """A build that cannot start or continue; the message names the problem and the fix."""


class UselessBuild(BuildError):
    """A plan that would keep no song, or leave train or val empty; `rejected` holds every
    rejection made so far, for rejected.csv."""

    def __init__(self, problem: str, rejected: list[Rejection]):
        super().__init__(problem)
        self.rejected = rejected


@dataclass(frozen=True)
class BuildConfig:
    """Every setting of `data_prep build` that decides the content of the shards."""

    out: str
    music4all: str | None = None
    manifest: str | None = None
    features: FeatureConfig = field(default_factory=FeatureConfig)
    label_mode: str = "single"
    top_genres: int | None = None
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    languages: tuple[str, ...] = ()
    limit: int | None = None
    require_lyrics: bool = False
    shard_size: int = 256

    @property
    def genre_count(self) -> int:
        return self.top_genres or DEFAULT_TOP_GENRES[self.label_mode]

    @property
    def source(self) -> str:
        return str(self.music4all or self.manifest)

    def settings(self) -> dict:
        """The settings as plan.json records them: one flat JSON dict keyed by field name (the option
        is `--field-name`), the source path absolute so that any spelling of it resumes, and no
        `out`, so that a moved folder resumes too."""
        values = {key: value for key, value in asdict(self).items() if key not in ("out", "features")}
        values.update(self.features.to_dict())
        del values["embedding_width"]  # the text encoder's, known only once it is loaded
        values["top_genres"] = self.genre_count
        for key in ("music4all", "manifest"):
            if values[key]:
                values[key] = str(Path(values[key]).resolve())
        return json.loads(json.dumps(values))  # tuples as lists, as read back from plan.json


@dataclass(frozen=True)
class ShardPlan:
    name: str
    split: str
    tasks: tuple[SongTask, ...]
    fingerprint: str  # of the tasks and their files' states: a finished shard is kept while it matches


@dataclass(frozen=True)
class BuildPlan:
    genres: tuple[str, ...]
    shards: tuple[ShardPlan, ...]
    rejected: tuple[Rejection, ...]
    lyrics_missing: frozenset[str] = frozenset()  # planned ids whose listed lyrics file does not exist


@dataclass(frozen=True)
class BuildSummary:
    meta: ShardsMeta
    seconds: float
    resumed_shards: int
    rebuilt_shards: dict[str, int] = field(default_factory=dict)  # why -> how many


def read_source(config: BuildConfig) -> pd.DataFrame:
    if bool(config.music4all) == bool(config.manifest):
        raise BuildError("give exactly one of --music4all DIR or --manifest CSV")
    return read_music4all(config.music4all) if config.music4all else read_manifest(config.manifest)


FileState = tuple[int, int]  # (size, mtime_ns)


def _file_state(path: Path | None) -> FileState | None:
    """Size and modification time of a regular file; None when there is none."""
    if path is None:
        return None
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_size, status.st_mtime_ns) if stat.S_ISREG(status.st_mode) else None


def _file_rejection(
    song_id: str,
    audio: Path,
    lyrics: Path | None,
    states: tuple[FileState | None, FileState | None],
    require_lyrics: bool,
) -> Rejection | None:
    """The faults that a song's file states show without reading them."""
    audio_state, lyrics_state = states
    if audio_state is None:
        return Rejection(song_id, "missing audio", str(audio))
    if audio_state[0] == 0:
        return Rejection(song_id, "empty audio file", str(audio))
    if require_lyrics:
        if lyrics is None:
            return Rejection(song_id, "no lyrics", "instrumental or no lyrics file listed")
        if lyrics_state is None:
            return Rejection(song_id, "missing lyrics", str(lyrics))
        if lyrics_state[0] == 0:
            return Rejection(song_id, "empty lyrics", str(lyrics))
    return None


def _shard_fingerprint(tasks: Iterable[SongTask], states: dict[str, tuple], root: Path) -> str:
    """What a shard's bytes depend on beyond the settings: its songs in order and their files
    (paths relative to the collection's `root`, so that any spelling of it gives the same)."""
    digest = hashlib.sha256(f"format {FORMAT_VERSION}".encode())
    for task in tasks:
        paths = [path and os.path.relpath(path, root) for path in (task.audio, task.lyrics)]
        song = [task.id, task.artist, task.labels, *paths, *states[task.id]]
        digest.update(json.dumps(song).encode() + b"\n")
    return digest.hexdigest()


def plan_build(config: BuildConfig, songs: pd.DataFrame) -> BuildPlan:
    """Select songs, reject what the song table and the file states show, build the vocabulary
    and labels, split by artist and assign shards.

    Every selected song ends in a shard's tasks or in `rejected`. Raises `SourceError` for an
    empty selection and `UselessBuild` when no song survives or the split leaves train or val
    empty.
    """
    selected = songs
    if config.languages:
        selected = selected[selected["lang"].isin(config.languages)]
    if config.limit:
        selected = selected.head(config.limit)
    if selected.empty:
        found = sorted({str(lang) for lang in songs["lang"].dropna()})
        raise SourceError(
            f"empty selection: no song of {config.source} matches --languages {','.join(config.languages)}"
            + (f" (languages present: {', '.join(found[:20])})" if found else "")
            if config.languages
            else f"empty selection: {config.source} lists no songs"
        )

    # Before the duplicate check: every empty id would be a duplicate of the first.
    no_id = (selected["id"] == "").to_numpy()
    rejected = [
        Rejection("", "empty id", f"data row {row + 1} of the song list") for row in np.flatnonzero(no_id)
    ]
    selected = selected[~no_id]
    duplicate = selected["id"].duplicated()
    rejected += [Rejection(song_id, "duplicate id") for song_id in selected.loc[duplicate, "id"]]
    selected = selected[~duplicate]

    states = {row.id: (_file_state(row.audio), _file_state(row.lyrics)) for row in selected.itertuples()}
    faults = [
        _file_rejection(row.id, row.audio, row.lyrics, states[row.id], config.require_lyrics)
        for row in selected.itertuples()
    ]
    rejected += [fault for fault in faults if fault]
    selected = selected[[fault is None for fault in faults]]
    if selected.empty:
        raise UselessBuild(f"no song of {config.source} has the files it lists", rejected)

    genres = build_vocabulary(selected["genres"], config.genre_count)
    labels = [assign_labels(names, genres, config.label_mode) for names in selected["genres"]]
    has_label = np.array([bool(label) for label in labels], dtype=bool)
    rejected += [Rejection(song_id, "no genre in vocabulary") for song_id in selected.loc[~has_label, "id"]]
    selected = selected[has_label]
    genres, labels = drop_unused_genres(genres, [label for label in labels if label])
    if selected.empty:
        raise UselessBuild(f"no song of {config.source} has a genre", rejected)

    try:
        split = split_by_artist(
            np.array([label[0] for label in labels]), selected["artist"].to_numpy(), config.split, config.seed
        )
    except SplitError as error:
        raise UselessBuild(str(error), rejected) from error
    empty = [name for name in NEEDED_SPLITS if not np.any(split == name)]
    if empty:
        raise UselessBuild(
            f"the split of the {len(selected)} remaining songs leaves {' and '.join(empty)} empty", rejected
        )

    tasks = [
        SongTask(row.id, row.artist, Path(row.audio), None if row.lyrics is None else Path(row.lyrics), label)
        for row, label in zip(selected.itertuples(index=False), labels, strict=True)
    ]
    root = Path(config.music4all) if config.music4all else Path(config.manifest).parent
    rng = np.random.default_rng(config.seed)
    shards = []
    for split_name in SPLIT_NAMES:
        members = [tasks[i] for i in np.flatnonzero(split == split_name)]
        members = [members[i] for i in rng.permutation(len(members))]
        count = -(-len(members) // config.shard_size)
        for index in range(count):
            chunk = tuple(members[index * config.shard_size : (index + 1) * config.shard_size])
            name = shard_name(split_name, index, count)
            shards.append(ShardPlan(name, split_name, chunk, _shard_fingerprint(chunk, states, root)))
    listed_lyrics = (task for task in tasks if task.lyrics is not None)
    lyrics_missing = frozenset(task.id for task in listed_lyrics if states[task.id][1] is None)
    return BuildPlan(genres, tuple(shards), tuple(rejected), lyrics_missing)


def _shown(value) -> str:
    """A setting as a user types it."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "(none)"
    return str(value)


def _check_settings(out: Path, settings: dict) -> None:
    """Refuse a folder whose plan.json records other settings, naming each one that differs."""
    plan_path = out / PROGRESS_DIR / PLAN_FILE
    if not plan_path.is_file():
        return
    previous = json.loads(plan_path.read_text(encoding="utf-8")).get("settings")
    if previous is None:
        raise BuildError(
            f"{out} holds a build of an earlier genre-fusion version: remove it or choose another --out"
        )
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


class SongFeaturizer:
    """Batches of decoded songs -> `SongRecord`s: log-mel, principal words, text embeddings."""

    def __init__(self, features: FeatureConfig, text_encoder=None):
        self.features = features
        self.text_encoder = text_encoder
        log_mel = LogMelSpectrogram.from_features(features)
        # One fixed batch shape: every new shape costs a slow first call of the STFT kernels.
        self._log_mel = tf.function(
            log_mel, input_signature=[tf.TensorSpec([BATCH_SIZE, features.clip_samples], tf.float32)]
        )
        self._waveforms = np.zeros((BATCH_SIZE, features.clip_samples), dtype=np.float32)

    def __call__(self, songs: list[LoadedSong]) -> list[SongRecord]:
        self._waveforms[: len(songs)] = [song.waveform for song in songs]
        log_mels = self._log_mel(self._waveforms).numpy()[: len(songs)].astype(np.float16)
        words = principal_words([song.lyrics for song in songs], self.features.max_tokens)
        embeddings = self.text_encoder.embed(words) if self.text_encoder else [None] * len(songs)
        return [
            SongRecord(
                id=song.task.id,
                artist=song.task.artist,
                log_mel=log_mel,
                audio_seconds=song.seconds,
                words=text,
                labels=song.task.labels,
                embeddings=None if vectors is None else vectors.astype(np.float16),
            )
            for song, log_mel, text, vectors in zip(songs, log_mels, words, embeddings, strict=True)
        ]


def load_text_encoder(features: FeatureConfig):
    """None for `learned`; otherwise the hub encoder, and `features` with its output width."""
    if not features.uses_embeddings:
        return None, features
    from genre_fusion.encoders.text import HubTextEncoder

    encoder = HubTextEncoder(features.text_encoder, output_key=features.text_output_key)
    return encoder, replace(features, embedding_width=encoder.width)


def _write_shard(
    out: Path,
    shard: ShardPlan,
    results: Iterator[LoadedSong | Rejection],
    featurize: SongFeaturizer,
    progress: tqdm,
    rejected_before: int,
) -> dict:
    written, labels, rejected, batch = [], [], [], []
    # What the model adapts to is counted here, once, instead of at the start of every run.
    statistics = TrainStatistics() if shard.split == TRAIN_SPLIT else None
    temporary = out / f"{shard.name}.tmp"
    with tf.io.TFRecordWriter(str(temporary)) as writer:

        def flush():
            records = featurize(batch)
            for record in records:
                writer.write(serialize_song(record))
                written.append(record.id)
                labels.append(list(record.labels))
            if statistics is not None:
                statistics.update([song.log_mel for song in records], [song.words for song in records])
            batch.clear()

        for _ in shard.tasks:
            result = next(results)
            if isinstance(result, Rejection):
                rejected.append(asdict(result))
            else:
                batch.append(result)
                if len(batch) == BATCH_SIZE:
                    flush()
            progress.update(1)
            progress.set_postfix(rejected=rejected_before + len(rejected), refresh=False)
        if batch:
            flush()
    temporary.replace(out / shard.name)
    record = {
        "split": shard.split,
        "ids": written,
        "labels": labels,
        "rejected": rejected,
        "fingerprint": shard.fingerprint,
        "size": (out / shard.name).stat().st_size,
        "statistics": None if statistics is None else statistics.to_dict(),
    }
    write_atomically(out / PROGRESS_DIR / f"{shard.name}.json", json.dumps(record) + "\n")
    return record



def _kept_shards(out: Path, plan: BuildPlan) -> tuple[dict[str, dict], dict[str, int]]:
    """The records of finished shards that still match the plan, and why the others are rebuilt."""
    kept, rebuilt = {}, collections.Counter()
    for shard in plan.shards:
        record_path = out / PROGRESS_DIR / f"{shard.name}.json"
        if not record_path.is_file():
            continue  # never finished: built, not rebuilt
        record = json.loads(record_path.read_text())
        file_state = _file_state(out / shard.name)
        if record.get("fingerprint") != shard.fingerprint:
            rebuilt["songs or their files changed"] += 1
        elif file_state is None:
            rebuilt["shard file missing"] += 1
        elif file_state[0] != record.get("size"):
            rebuilt["shard file truncated or changed"] += 1
        elif "statistics" not in record:
            rebuilt["made before training statistics were recorded"] += 1
        else:
            kept[shard.name] = record
    return kept, dict(rebuilt)


def _remove_stale_shards(out: Path, plan: BuildPlan) -> None:
    """Delete the shards (and records) of an earlier plan of this build that this plan has not."""
    planned = {shard.name for shard in plan.shards}
    for record_path in (out / PROGRESS_DIR).glob("*.tfrecord.json"):
        name = record_path.name.removesuffix(".json")
        if name not in planned:
            (out / name).unlink(missing_ok=True)
            record_path.unlink()
    for temporary in out.glob("*-of-*.tfrecord.tmp"):  # a killed run's unfinished shard
        temporary.unlink()


def _report_native_messages(native: DecoderMessages, out: Path) -> None:
    if native.summary():
        (out / NOTES_FILE).write_text(native.text, encoding="utf-8")
        print(f"note: {native.summary()} while decoding; saved in {out / NOTES_FILE}", file=sys.stderr)


def build_shards(config: BuildConfig, workers: int | None = None, progress: bool = True) -> BuildSummary:
    """Run (or resume) a build; returns the written meta and timing.

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
            meta, kept, rebuilt = _build_locked(config, out, workers or DEFAULT_WORKERS, progress)
    except BaseException:
        if created and _holds_only_the_lock(out):
            shutil.rmtree(out)  # a build refused before writing anything leaves no folder behind
        raise
    return BuildSummary(meta, time.perf_counter() - started, kept, rebuilt)


def _holds_only_the_lock(out: Path) -> bool:
    entries = sorted(path.relative_to(out) for path in out.rglob("*"))
    return entries == [Path(PROGRESS_DIR), Path(PROGRESS_DIR) / LOCK_FILE]


def _build_locked(
    config: BuildConfig, out: Path, workers: int, progress: bool
) -> tuple[ShardsMeta, int, dict[str, int]]:
    """The build itself, in a folder this process holds: meta, shards kept, shards rebuilt by reason."""
    settings = config.settings()
    _check_settings(out, settings)
    try:
        plan = plan_build(config, read_source(config))
    except UselessBuild as useless:
        rejected = [asdict(item) for item in useless.rejected]
        (out / META_FILE).unlink(missing_ok=True)
        _write_tables(out, [], rejected)
        raise _useless_error(str(useless), rejected, out) from None
    text_encoder, features = load_text_encoder(config.features)
    done, rebuilt = _kept_shards(out, plan)
    pending = [shard for shard in plan.shards if shard.name not in done]
    _remove_stale_shards(out, plan)
    write_atomically(out / PROGRESS_DIR / PLAN_FILE, json.dumps({"settings": settings}) + "\n")
    if pending:
        (out / META_FILE).unlink(missing_ok=True)  # its presence would claim a complete set
        # TensorFlow starts its devices (and prints about them) here, not among the decoder's notes.
        tf.config.list_physical_devices()
        featurize = SongFeaturizer(features, text_encoder)
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
                    done[shard.name] = _write_shard(out, shard, results, featurize, bar, rejected_before)
    _report_native_messages(native, out)
    return _finish(config, features, plan, done, out), len(plan.shards) - len(pending), rebuilt


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
    statistics.write(out)
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
    )
    meta.write(out)
    return meta
