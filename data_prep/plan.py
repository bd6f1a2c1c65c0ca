"""The plan of a build: its source's song table -> the genres and each shard's songs.

Planning (selection, vocabulary, labels, split, shard assignment) is deterministic from the
settings, the seed and the files listed; what a file's existence and size tell (missing or empty
audio, and under `--require-lyrics` missing or empty lyrics) is rejected before the vocabulary
and the split, so no genre and no split is left without the songs planned for it. Each shard's
fingerprint covers its songs and their files' states, so a rerun can tell a finished shard that
still holds what the plan asks for.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data_prep.build_config import BuildConfig
from data_prep.build_error import BuildError, UselessBuild
from data_prep.genre_map import UNMAPPED_REASON, read_genre_map
from data_prep.labels import assign_labels, build_vocabulary, drop_unused_genres
from data_prep.multi_label_split import split_multi_label_by_artist
from data_prep.song_loader import Rejection, SongTask
from data_prep.sources import SourceError, read_manifest, read_music4all
from data_prep.split import SPLIT_NAMES, SplitError, split_by_artist
from genre_fusion.data.schema import FORMAT_VERSION
from genre_fusion.data.shards import shard_name

TRAIN_SPLIT = "train"
NEEDED_SPLITS = (TRAIN_SPLIT, "val")  # training fits on train and picks its best epoch on val

FileState = tuple[int, int]  # (size, mtime_ns)


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


def read_source(config: BuildConfig) -> pd.DataFrame:
    """The song table of the config's one source (Music4All folder or manifest)."""
    if bool(config.music4all) == bool(config.manifest):
        raise BuildError("give exactly one of --music4all DIR or --manifest CSV")
    return read_music4all(config.music4all) if config.music4all else read_manifest(config.manifest)


def file_state(path: Path | None) -> FileState | None:
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

    states = {row.id: (file_state(row.audio), file_state(row.lyrics)) for row in selected.itertuples()}
    faults = [
        _file_rejection(row.id, row.audio, row.lyrics, states[row.id], config.require_lyrics)
        for row in selected.itertuples()
    ]
    rejected += [fault for fault in faults if fault]
    selected = selected[[fault is None for fault in faults]]
    if selected.empty:
        raise UselessBuild(f"no song of {config.source} has the files it lists", rejected)

    if config.genre_map is not None:
        genre_map = read_genre_map(config.genre_map)
        mapped = [genre_map.apply(names) for names in selected["genres"]]
        # A song without any genre keeps the reason the vocabulary gives it below.
        listed = np.array([bool(names) for names in selected["genres"]], dtype=bool)
        unmapped = listed & np.array([not coarse for coarse in mapped], dtype=bool)
        rejected += [Rejection(song_id, UNMAPPED_REASON) for song_id in selected.loc[unmapped, "id"]]
        selected = selected.assign(genres=mapped)[~unmapped]
        if selected.empty:
            raise UselessBuild(f"no song of {config.source} has a genre listed in {genre_map.path}", rejected)

    genres = build_vocabulary(selected["genres"], config.genre_count)
    labels = [assign_labels(names, genres, config.label_mode) for names in selected["genres"]]
    has_label = np.array([bool(label) for label in labels], dtype=bool)
    rejected += [Rejection(song_id, "no genre in vocabulary") for song_id in selected.loc[~has_label, "id"]]
    selected = selected[has_label]
    genres, labels = drop_unused_genres(genres, [label for label in labels if label])
    if selected.empty:
        raise UselessBuild(f"no song of {config.source} has a genre", rejected)

    try:
        artists = selected["artist"].to_numpy()
        if config.label_mode == "multi":  # stratified over each artist's whole label set
            split = split_multi_label_by_artist(labels, artists, config.split, config.seed)
        else:
            first_genres = np.array([label[0] for label in labels])
            split = split_by_artist(first_genres, artists, config.split, config.seed)
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
