"""The shard builder: a song collection -> the shards directory of DESIGN.md.

Planning (vocabulary, labels, split, shard assignment) is deterministic from the settings and
the seed. Decoding threads read audio and lyrics (libsndfile, soxr and numpy release the GIL, so
threads use every core without copying waveforms between processes); the TensorFlow work
(log-mel, principal words, text embeddings) runs in batches, and each shard is written under a
temporary name, renamed when complete. A shard's record in `_progress/` marks it done, so a rerun
after any interruption (kill -9 included) keeps finished shards and ends with the same files as an
uninterrupted run.
"""

from __future__ import annotations

import collections
import csv
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
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
from data_prep.split import SPLIT_NAMES, split_by_artist
from genre_fusion.features import FeatureConfig
from genre_fusion.log_mel import LogMelSpectrogram
from genre_fusion.principal_words import principal_words
from genre_fusion.schema import SongRecord, serialize_song
from genre_fusion.shards import REJECTED_FILE, SPLITS_FILE, ShardsMeta, shard_name

PROGRESS_DIR = "_progress"
PLAN_FILE = "plan.json"
BATCH_SIZE = 16
# Songs decoded ahead of the writer: the submission queue must outlast a whole featurized batch,
# or the decoders run dry while log-mels are computed (memory: about 2.6 MB a 30 s song).
PREFETCH_SONGS = 3 * BATCH_SIZE


class BuildError(ValueError):
    """A build that cannot start or continue; the message names the problem and the fix."""


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


@dataclass(frozen=True)
class ShardPlan:
    name: str
    split: str
    tasks: tuple[SongTask, ...]


@dataclass(frozen=True)
class BuildPlan:
    genres: tuple[str, ...]
    shards: tuple[ShardPlan, ...]
    rejected: tuple[Rejection, ...]


@dataclass(frozen=True)
class BuildSummary:
    meta: ShardsMeta
    seconds: float
    resumed_shards: int


def read_source(config: BuildConfig) -> pd.DataFrame:
    if bool(config.music4all) == bool(config.manifest):
        raise BuildError("give exactly one of --music4all DIR or --manifest CSV")
    return read_music4all(config.music4all) if config.music4all else read_manifest(config.manifest)


def plan_build(config: BuildConfig, songs: pd.DataFrame) -> BuildPlan:
    """Select songs, build the vocabulary and labels, split by artist and assign shards."""
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

    duplicate = selected["id"].duplicated()
    rejected = [Rejection(song_id, "duplicate id") for song_id in selected.loc[duplicate, "id"]]
    selected = selected[~duplicate]

    genres = build_vocabulary(selected["genres"], config.genre_count)
    labels = [assign_labels(names, genres, config.label_mode) for names in selected["genres"]]
    has_label = np.array([bool(label) for label in labels], dtype=bool)
    rejected += [Rejection(song_id, "no genre in vocabulary") for song_id in selected.loc[~has_label, "id"]]
    selected = selected[has_label]
    genres, labels = drop_unused_genres(genres, [label for label in labels if label])
    if selected.empty:
        raise SourceError(f"empty selection: no song of {config.source} has a genre")

    split = split_by_artist(
        np.array([label[0] for label in labels]), selected["artist"].to_numpy(), config.split, config.seed
    )
    tasks = [
        SongTask(row.id, row.artist, Path(row.audio), None if row.lyrics is None else Path(row.lyrics), label)
        for row, label in zip(selected.itertuples(index=False), labels, strict=True)
    ]
    rng = np.random.default_rng(config.seed)
    shards = []
    for split_name in SPLIT_NAMES:
        members = [tasks[i] for i in np.flatnonzero(split == split_name)]
        members = [members[i] for i in rng.permutation(len(members))]
        count = -(-len(members) // config.shard_size)
        shards += [
            ShardPlan(
                shard_name(split_name, index, count),
                split_name,
                tuple(members[index * config.shard_size : (index + 1) * config.shard_size]),
            )
            for index in range(count)
        ]
    return BuildPlan(genres, tuple(shards), tuple(rejected))


def _fingerprint(config: BuildConfig, plan: BuildPlan) -> str:
    settings = {key: value for key, value in asdict(config).items() if key != "out"}  # a moved folder resumes
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for shard in plan.shards:
        digest.update(shard.name.encode())
        for task in shard.tasks:
            digest.update(task.id.encode() + b"\0")
    return digest.hexdigest()


def _check_resumable(out: Path, fingerprint: str) -> None:
    plan_path = out / PROGRESS_DIR / PLAN_FILE
    if plan_path.is_file():
        previous = json.loads(plan_path.read_text())["fingerprint"]
        if previous != fingerprint:
            raise BuildError(
                f"{out} holds a build with other settings or songs; "
                "remove it or choose another --out (a rerun resumes only the same build)"
            )
    elif out.is_dir() and any(out.iterdir()):
        raise BuildError(f"{out} exists and is not a shards directory of this build: choose an empty --out")
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    plan_path.write_text(json.dumps({"fingerprint": fingerprint}) + "\n")


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
    from genre_fusion.text_encoders import HubTextEncoder

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
    temporary = out / f"{shard.name}.tmp"
    with tf.io.TFRecordWriter(str(temporary)) as writer:

        def flush():
            for record in featurize(batch):
                writer.write(serialize_song(record))
                written.append(record.id)
                labels.append(list(record.labels))
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
    record = {"split": shard.split, "ids": written, "labels": labels, "rejected": rejected}
    _write_json_atomically(out / PROGRESS_DIR / f"{shard.name}.json", record)
    return record


def _write_json_atomically(path: Path, value) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(value) + "\n")
    temporary.replace(path)


def build_shards(config: BuildConfig, workers: int | None = None, progress: bool = True) -> BuildSummary:
    """Run (or resume) a build; returns the written meta and timing."""
    started = time.perf_counter()
    out = Path(config.out)
    plan = plan_build(config, read_source(config))
    _check_resumable(out, _fingerprint(config, plan))
    progress_dir = out / PROGRESS_DIR

    done = {
        shard.name: json.loads((progress_dir / f"{shard.name}.json").read_text())
        for shard in plan.shards
        if (progress_dir / f"{shard.name}.json").is_file()
    }
    pending = [shard for shard in plan.shards if shard.name not in done]
    text_encoder, features = load_text_encoder(config.features)
    workers = workers or DEFAULT_WORKERS

    total = sum(len(shard.tasks) for shard in plan.shards)
    bar = tqdm(
        total=total,
        initial=total - sum(len(s.tasks) for s in pending),
        unit="song",
        desc="build",
        disable=not progress,
    )
    if pending:
        featurize = SongFeaturizer(features, text_encoder)
        load = partial(
            load_song,
            sample_rate=features.sample_rate,
            clip_seconds=features.clip_seconds,
            require_lyrics=config.require_lyrics,
        )
        with ThreadPoolExecutor(workers) as pool:
            results = _bounded_map(
                pool, load, (t for s in pending for t in s.tasks), max(PREFETCH_SONGS, 4 * workers)
            )
            for shard in pending:
                rejected_before = sum(len(record["rejected"]) for record in done.values())
                done[shard.name] = _write_shard(out, shard, results, featurize, bar, rejected_before)
    bar.close()

    meta = _finish(config, features, plan, done, out)
    return BuildSummary(meta, time.perf_counter() - started, len(plan.shards) - len(pending))


def _genre_counts(records: list[dict], split: str, genres: int) -> list[int]:
    counts = np.zeros(genres, dtype=int)
    for record in records:
        if record["split"] == split:
            for labels in record["labels"]:
                counts[labels] += 1
    return counts.tolist()


def _finish(
    config: BuildConfig, features: FeatureConfig, plan: BuildPlan, done: dict, out: Path
) -> ShardsMeta:
    records = [done[shard.name] for shard in plan.shards]
    with open(out / SPLITS_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", "split"])
        for record in records:
            writer.writerows([song_id, record["split"]] for song_id in record["ids"])
    rejected = [asdict(item) for item in plan.rejected] + [item for r in records for item in r["rejected"]]
    with open(out / REJECTED_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "reason", "detail"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rejected)
    meta = ShardsMeta(
        genres=plan.genres,
        label_mode=config.label_mode,
        features=features,
        split_sizes={name: sum(len(r["ids"]) for r in records if r["split"] == name) for name in SPLIT_NAMES},
        shard_counts={name: sum(1 for s in plan.shards if s.split == name) for name in SPLIT_NAMES},
        genre_counts={name: _genre_counts(records, name, len(plan.genres)) for name in SPLIT_NAMES},
        rejected=dict(collections.Counter(item["reason"] for item in rejected).most_common()),
        source=config.source,
        seed=config.seed,
    )
    meta.write(out)
    return meta
