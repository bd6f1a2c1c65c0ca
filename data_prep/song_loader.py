"""The per-song work of preparation that runs in decoding threads: decode audio, read lyrics."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genre_fusion.features.audio import AudioDecodeError, decode_audio
from genre_fusion.features.lyrics import LyricsError, read_lyrics

# Decoding releases the GIL: one thread per core; TensorFlow's kernels fill the gaps.
DEFAULT_WORKERS = os.cpu_count() or 1


@dataclass(frozen=True)
class SongTask:
    id: str
    artist: str
    audio: Path
    lyrics: Path | None
    labels: tuple[int, ...]


@dataclass(frozen=True)
class LoadedSong:
    """`waveform` float32 [clip_samples]; `lyrics` raw text ("" for a song without lyrics)."""

    task: SongTask
    waveform: np.ndarray
    seconds: float
    lyrics: str


@dataclass(frozen=True)
class Rejection:
    id: str
    reason: str
    detail: str = ""


def load_song(
    task: SongTask, sample_rate: int, clip_seconds: float, require_lyrics: bool
) -> LoadedSong | Rejection:
    """Decode and read one song; a per-song fault becomes a `Rejection` with a stable reason.

    What a file's existence and size tell was checked when the build was planned; this finds
    what only reading does: undecodable audio, and under `require_lyrics` lyrics of blanks only
    (or a file gone since).
    """
    try:
        clip = decode_audio(task.audio, sample_rate, clip_seconds)
        lyrics = None if task.lyrics is None else read_lyrics(task.lyrics)
    except (AudioDecodeError, LyricsError) as error:
        return Rejection(task.id, error.reason, str(error))
    if require_lyrics and not (lyrics or "").strip():
        return Rejection(task.id, "missing lyrics" if lyrics is None else "empty lyrics", str(task.lyrics))
    return LoadedSong(task, clip.waveform, clip.seconds, lyrics or "")
