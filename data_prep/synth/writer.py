"""Writes a demo collection into a folder: the songs' files, the tables and ``synth.json``, after
claiming the folder by the rule of ``genre_fusion.files.owned_outputs``."""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from data_prep.sources import AUDIO_FOLDER, INSTRUMENTAL_LANG, LYRICS_FOLDER, MUSIC4ALL_TABLES
from data_prep.synth.audio import synth_audio
from data_prep.synth.catalogue import Catalog, Song, plan_songs
from data_prep.synth.draws import between, random_id
from data_prep.synth.faults import INVALID_UTF8, SHORT_SECONDS, audio_bytes, plan_faults, song_files
from data_prep.synth.lyrics import synth_lyrics
from data_prep.synth.styles import AUDIO_STYLES, GENRES, audio_group, lyric_group
from genre_fusion.files.owned_outputs import clear_outputs, foreign_entries, record_outputs

MIN_GENRES, MAX_GENRES = 2, len(GENRES)
CSV_COLUMNS = {  # the tables synth writes: the three that sources reads, and two more of Music4All's
    **MUSIC4ALL_TABLES,
    "id_metadata.csv": (
        "id",
        "spotify_id",
        "popularity",
        "release",
        "danceability",
        "energy",
        "key",
        "mode",
        "valence",
        "tempo",
        "duration_ms",
    ),
    "id_tags.csv": ("id", "tags"),
}
FAULTS_CSV = "faults.csv"
SETTINGS_FILE = "synth.json"  # the settings of the collection in a folder, and whether it is complete
SONG_FOLDERS = (AUDIO_FOLDER, LYRICS_FOLDER)
DEMO_KIND = "demo collection"  # the folder's kind in its outputs record (`genre_fusion.files.owned_outputs`)
SPOTIFY_ID_LEN = 22
RELEASE_YEARS = (1965, 2019)  # inclusive
TRACK_MS = (150_000, 330_000)  # Spotify's duration_ms is the full track's, not the 30 s clip's
FEATURE_STD = 0.08  # spread of energy, danceability and valence around the style's mean
MIN_SECONDS = 1.0  # so that healthy clips stay distinguishable from short and truncated ones
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)  # what LAME encodes
WORKERS = min(8, os.cpu_count() or 1)  # numpy and libsndfile release the GIL: threads scale


@dataclass(frozen=True)
class SynthSummary:
    """What ``write_demo_collection`` wrote."""

    out_dir: Path
    songs: int  # rows written to id_information.csv (faulty songs included)
    genres: tuple[str, ...]
    faults: dict[str, str]  # song id -> fault name, empty without faults
    already_there: bool = False  # the folder held this very collection: nothing was written


def _write_song(song: Song, out_dir: Path, k: int, seconds: float, sr: int) -> dict[str, object]:
    """Writes ``song``'s audio and lyrics files as its fault wants; returns its id_metadata row."""
    rng = np.random.default_rng(song.seed)
    style = AUDIO_STYLES[audio_group(song.genre)]
    clip_seconds = SHORT_SECONDS if song.fault == "short_audio" else seconds
    audio, tempo, key = synth_audio(style, rng, clip_seconds, sr)
    topic = lyric_group(song.genre, k)
    lyrics = "" if song.lang == INSTRUMENTAL_LANG else synth_lyrics(topic, song.lang, rng)
    for path in song_files(song):  # audio first: its bytes draw from rng before the metadata does
        if path.startswith(f"{AUDIO_FOLDER}/"):
            (out_dir / path).write_bytes(audio_bytes(audio, sr, song.fault, rng))
        else:
            prefix = INVALID_UTF8 if song.fault == "invalid_utf8_lyrics" else b""
            (out_dir / path).write_bytes(prefix + lyrics.encode("utf-8"))

    def feature(mean: float) -> float:
        return round(float(np.clip(rng.normal(mean, FEATURE_STD), 0, 1)), 3)

    return {
        "id": song.id,
        "spotify_id": random_id(rng, SPOTIFY_ID_LEN),
        "popularity": int(rng.integers(0, 101)),
        "release": between(rng, RELEASE_YEARS),
        "danceability": feature(style.danceability),
        "energy": feature(style.energy),
        "key": key,
        "mode": style.mode,
        "valence": feature(style.valence),
        "tempo": round(tempo, 3),
        "duration_ms": int(rng.integers(*TRACK_MS)),
    }


def _write_csv(path: Path, rows: list[dict[str, object]], columns: tuple[str, ...]) -> None:
    """Writes ``columns`` of ``rows`` (other keys ignored) as a tab-separated table, as Music4All's."""
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, sep="\t", index=False)


def _write_settings(out_dir: Path, settings: dict, complete: bool) -> None:
    """Writes ``synth.json``: the collection's ``settings`` and whether it is ``complete``."""
    record = {"settings": settings, "complete": complete}
    (out_dir / SETTINGS_FILE).write_text(json.dumps(record) + "\n", encoding="utf-8")


def _claim_folder(out_dir: Path, settings: dict, files: list[str], overwrite: bool) -> bool:
    """Check ``out_dir`` before anything is written or deleted there; True when it already holds the
    complete collection of ``settings`` (every one of its ``files`` included).

    Raises ValueError for a file, for a folder holding anything synth's record of its outputs does
    not list, and for a collection of other settings unless ``overwrite``, which then deletes the
    recorded outputs (`genre_fusion.files.owned_outputs`: the rule every --overwrite follows).
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file: expected a folder")
    foreign = foreign_entries(out_dir, DEMO_KIND)
    if foreign:
        listed = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ValueError(
            f"--out {out_dir} holds {listed}, which data_prep synth did not write: nothing was changed; "
            "choose a new or empty folder"
        )
    try:
        record = json.loads((out_dir / SETTINGS_FILE).read_text(encoding="utf-8"))
        previous = dict(record["settings"])
    except (OSError, ValueError, KeyError, TypeError):
        # An empty folder, or a synth that died before its settings were written: nothing to keep.
        clear_outputs(out_dir, DEMO_KIND)
        return False
    if previous == settings:  # complete, or unfinished and written over in place
        return bool(record.get("complete")) and all((out_dir / name).is_file() for name in files)
    if not overwrite:
        changes = "; ".join(
            f"--{key.replace('_', '-')} {previous.get(key)} -> {value}"
            for key, value in settings.items()
            if previous.get(key) != value
        )
        raise ValueError(
            f"--out {out_dir} holds a demo collection of other settings ({changes}): add --overwrite to "
            "replace it (only what synth wrote there is deleted)"
        )
    clear_outputs(out_dir, DEMO_KIND)
    return False


def write_demo_collection(
    out_dir: Path,
    songs: int = 240,
    genres: int = 6,
    seconds: float = 10.0,
    seed: int = 0,
    faults: bool = False,
    sample_rate: int = 22050,
    progress: bool = True,
    overwrite: bool = False,
) -> SynthSummary:
    """Writes a demo collection of ``songs`` songs of the first ``genres`` of GENRES into ``out_dir``.

    Clips are ``seconds`` long mono MP3s at ``sample_rate``. With ``faults`` one broken song per
    fault of FAULTS is added and listed in faults.csv. The same seed gives the same CSVs and lyrics
    byte for byte and the same audio samples; the healthy songs do not depend on ``faults``.
    A folder that already holds the complete collection of these settings is left as it is
    (``already_there``); one of other settings is replaced only with ``overwrite``.
    Raises ValueError for genres outside 2..12, songs < 2 * genres, seconds < 1, a sample rate
    MP3 cannot hold, a folder holding anything synth did not write, or a collection of other
    settings without ``overwrite``.
    """
    if not MIN_GENRES <= genres <= MAX_GENRES:
        raise ValueError(
            f"--genres must be between {MIN_GENRES} and {MAX_GENRES} (there are "
            f"{MAX_GENRES} genre names: {', '.join(GENRES)}), got {genres}"
        )
    if songs < 2 * genres:
        raise ValueError(
            f"--songs must be at least 2 per genre, {2 * genres} for {genres} genres, got {songs}"
        )
    if not (math.isfinite(seconds) and seconds >= MIN_SECONDS):
        raise ValueError(f"--seconds must be at least {MIN_SECONDS}, got {seconds}")
    if sample_rate not in MP3_RATES:
        raise ValueError(
            f"sample_rate must be one MP3 supports ({', '.join(map(str, MP3_RATES))}), got {sample_rate}"
        )
    out_dir = Path(out_dir)
    catalog = Catalog(np.random.default_rng(seed), GENRES[:genres])
    healthy = plan_songs(catalog, songs)
    all_songs = healthy + (plan_faults(catalog, healthy) if faults else [])
    broken = {s.id: s.fault for s in all_songs if s.fault}
    summary = SynthSummary(out_dir=out_dir, songs=len(all_songs), genres=GENRES[:genres], faults=broken)
    settings = {
        "songs": songs,
        "genres": genres,
        "seconds": seconds,
        "seed": seed,
        "faults": faults,
        "sample_rate": sample_rate,
    }
    tables = [*CSV_COLUMNS, *([FAULTS_CSV] if faults else [])]
    files = [*tables, *(name for song in all_songs for name in song_files(song))]
    if _claim_folder(out_dir, settings, files, overwrite):
        return replace(summary, already_there=True)

    # Recorded first, so that what an interrupted run leaves is still known to be synth's.
    record_outputs(out_dir, DEMO_KIND, [*tables, *SONG_FOLDERS, SETTINGS_FILE])
    for folder in SONG_FOLDERS:
        (out_dir / folder).mkdir(exist_ok=True)
    _write_settings(out_dir, settings, complete=False)

    write = partial(_write_song, out_dir=out_dir, k=genres, seconds=seconds, sr=sample_rate)
    with ThreadPoolExecutor(WORKERS) as pool:
        metadata = list(
            tqdm(
                pool.map(write, all_songs),
                total=len(all_songs),
                desc="synth songs",
                unit="song",
                disable=not progress,
            )
        )

    # Every field of a song in one row; each table writes its own columns of it.
    rows = [
        {
            "artist": s.artist,
            "song": s.title,
            "album_name": s.album,
            "genres": s.genres,
            "lang": s.lang,
            "tags": s.tags,
            **row,
        }
        for s, row in zip(all_songs, metadata, strict=True)
    ]
    # a stable sort by id, as in Music4All: a duplicated id's second row follows its first
    order = sorted(range(len(all_songs)), key=lambda i: all_songs[i].id)
    for name, columns in CSV_COLUMNS.items():
        _write_csv(out_dir / name, [rows[i] for i in order], columns)
    if faults:
        _write_csv(out_dir / FAULTS_CSV, [{"id": i, "fault": f} for i, f in broken.items()], ("id", "fault"))
    _write_settings(out_dir, settings, complete=True)
    return summary
